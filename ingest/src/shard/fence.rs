//! A vshard's permission to write, as its owner's lease allows (cluster mode).
//!
//! The cluster's ownership loop moves the deadline forward at every renewal and revokes it
//! when the lease is lost or handed over. The worker checks it before it logs a record (again
//! after the limits, which may wait on the catalog), before feed operations that write, and
//! after each log sync, before it answers; and the storage asks it too, right before every
//! write it makes: the WAL writer thread before each append and trim, the store before each
//! feed file and checkpoint it flushes (`ynni_storage::wal::Guard`). So a worker delayed
//! anywhere (a slow catalog, a slow sync of the shared filesystem, a paused process) writes
//! nothing once the deadline has passed, on the clock that keeps counting through a suspend
//! ([`ynni_core::boot_clock`]). The deadline is the lease's local one, which passes
//! before the database lets any other node take the vshard (see `ynni_cluster::lease`), so a
//! write that finds it valid is made by the only owner.
//!
//! What remains is the gap between the storage's check and the write right after it, inside
//! one thread with no waiting between them: the lease's margin (a fifth of it, 2 s by
//! default) covers it unless the process is stopped exactly there for longer than the margin.
//! Each kind of write such a late writer can make is harmless or bounded:
//! - A log append lands in the segment the former owner had open, past the point where the
//!   new owner's first segment begins: the log ignores it ([`ynni_storage::wal`]), and it was
//!   never acknowledged (the check after the sync fails).
//! - A checkpoint is named by its LSN, so it cannot replace the new owner's newer one
//!   ([`ynni_storage::checkpoint`]); a trim only deletes what that former checkpoint covered,
//!   which every newer checkpoint covers too.
//! - A feed file write puts there what the log says, which the new owner replays too and
//!   writes the same; it differs only where the new owner has since written the same slot
//!   again (a point posted twice for one time), and that one write of one flush is the
//!   remaining exposure.
//!
//! Acknowledgements are safe whatever the pause: the check after the sync comes after the
//! write, so a reply is only sent by an owner whose lease was valid once the data was durable.

use std::sync::Mutex;
use ynni_core::boot_clock::BootInstant;

/// Until when the owner of one vshard may write for it.
#[derive(Debug, Default)]
pub struct Fence {
    deadline: Mutex<Option<BootInstant>>,
}

impl Fence {
    /// A fence valid until `deadline`.
    pub fn until(deadline: BootInstant) -> Self {
        Self {
            deadline: Mutex::new(Some(deadline)),
        }
    }

    /// Moves the deadline (a renewed lease); never revives a fence that was revoked or whose
    /// deadline passed (that lease is lost, whatever a late renewal says).
    pub fn extend(&self, deadline: BootInstant) {
        let mut d = self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = d.as_mut()
            && BootInstant::now() < *old
        {
            *old = deadline.max(*old);
        }
    }

    /// From now on nothing may be written or acknowledged.
    pub fn revoke(&self) {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether the owner may still act at this moment.
    pub fn valid(&self) -> bool {
        self.deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|d| BootInstant::now() < d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn valid_until_the_deadline_and_never_after_revoking() {
        let f = Fence::until(BootInstant::now() + Duration::from_secs(60));
        assert!(f.valid());
        f.revoke();
        assert!(!f.valid());
        f.extend(BootInstant::now() + Duration::from_secs(60));
        assert!(!f.valid(), "a revoked fence stays revoked");
        let past = Fence::until(BootInstant::now());
        assert!(!past.valid());
        past.extend(BootInstant::now() + Duration::from_secs(60));
        assert!(!past.valid(), "a passed deadline is not revived");
        let live = Fence::until(BootInstant::now() + Duration::from_secs(1));
        live.extend(BootInstant::now() + Duration::from_secs(60));
        live.extend(BootInstant::now());
        assert!(live.valid(), "a renewal moves the deadline, never back");
    }
}
