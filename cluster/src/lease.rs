//! vshard leases: one owner per vshard at a time, with an epoch that grows at every change of
//! hands and a local deadline that fences an owner which can no longer renew.
//!
//! # Why two nodes never own a vshard at once
//!
//! A lease is a row of `vshard_leases` (owner, epoch, expires). Every decision about it is one
//! conditional `UPDATE` evaluated by Postgres against **its own clock**
//! (`clock_timestamp()`), so all nodes are judged by one clock and no node compares its wall
//! clock with another's:
//!
//! - *acquire* succeeds only if the row has no owner or `expires` has passed; it sets
//!   `expires = db_now + lease` and raises the epoch;
//! - *renew* succeeds only for the same owner and epoch while `expires` has not passed; an
//!   expired lease is never renewed (it must be acquired again, with a new epoch);
//! - *release* clears the owner of a lease the node still holds.
//!
//! The holder's own view is a deadline on its **boot-time** clock: `sent + lease − margin`,
//! where `sent` is read *before* the acquire or renew statement is sent. Postgres evaluates
//! the statement after it was sent, so the database's `expires` is at least `lease` after the
//! real moment `sent`; the holder's deadline is `margin` earlier than that, as long as the two
//! clocks' rates over one lease differ by less than `margin` (a fifth of the lease: 2 s of
//! 10 s, where clock rates differ by parts per million). A node checks [`Lease::valid`] before
//! it acknowledges or writes for a vshard (after each log sync, before each answer), so a node
//! that stops renewing, whether cut off from Postgres, overloaded or paused by SIGSTOP,
//! stops acting for the vshard before the row can expire, and another node can acquire it
//! only after the row has expired. A node resumed after a pause finds its deadline passed,
//! and its late renewal is refused because the epoch or the expiry no longer match.
//!
//! The local clock is `CLOCK_BOOTTIME` ([`ynni_core::boot_clock`]), not `std`'s `Instant`
//! (`CLOCK_MONOTONIC`), which stands still while the machine or its virtual machine is
//! suspended: a node woken from a suspend longer than its lease must find its deadline passed,
//! as one resumed from SIGSTOP does. A hypervisor's pause of a whole VM may hide even that
//! clock's time (see [`ynni_core::boot_clock`]); what a node resumed that way can still do is
//! bounded as `ynni_ingest::shard::fence` describes.
//!
//! What this assumes: the database server's clock does not step forward (NTP slews, it does
//! not jump), and Postgres is one primary (its own replication, e.g. Patroni, handles its
//! failures).

use std::time::Duration;

use ynni_core::boot_clock::BootInstant;

use sqlx::PgPool;

use crate::ClusterError;

/// A vshard held by this node until [`Lease::deadline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub vshard: u16,
    pub epoch: i64,
    /// When this node must stop acting for the vshard unless renewed.
    pub deadline: BootInstant,
}

impl Lease {
    /// Whether the node may still acknowledge and write for the vshard.
    pub fn valid(&self, now: BootInstant) -> bool {
        now < self.deadline
    }
}

/// Lease timing: how long a lease lasts in the database and how much earlier the holder
/// stops trusting it.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub lease: Duration,
    pub margin: Duration,
}

impl Timing {
    /// A lease of `lease`, trusted locally for four fifths of it.
    pub fn new(lease: Duration) -> Self {
        Self {
            lease,
            margin: lease / 5,
        }
    }

    /// How often a holder renews: three times per lease, so two renewals may fail before the
    /// local deadline.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    fn deadline(&self, sent: BootInstant) -> BootInstant {
        sent + self.lease.saturating_sub(self.margin)
    }

    fn seconds(&self) -> f64 {
        self.lease.as_secs_f64()
    }
}

/// Leases taken and given up by one node.
#[derive(Debug, Clone)]
pub struct Leases {
    pool: PgPool,
    node: String,
    timing: Timing,
}

impl Leases {
    pub fn new(pool: PgPool, node: impl Into<String>, timing: Timing) -> Self {
        Self {
            pool,
            node: node.into(),
            timing,
        }
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Takes `vshard` if nobody holds it or its lease has expired by the database's clock.
    /// `None` while another node's lease (or this node's own, from before a restart) runs.
    pub async fn acquire(&self, vshard: u16) -> Result<Option<Lease>, ClusterError> {
        let sent = BootInstant::now();
        let epoch: Option<i64> = sqlx::query_scalar(
            "UPDATE vshard_leases SET owner = $1, epoch = epoch + 1, \
             expires = clock_timestamp() + make_interval(secs => $2) \
             WHERE vshard = $3 AND (owner IS NULL OR expires < clock_timestamp()) \
             RETURNING epoch",
        )
        .bind(&self.node)
        .bind(self.timing.seconds())
        .bind(i32::from(vshard))
        .fetch_optional(&self.pool)
        .await
        .map_err(ClusterError::db("acquiring a vshard lease"))?;
        Ok(epoch.map(|epoch| Lease {
            vshard,
            epoch,
            deadline: self.timing.deadline(sent),
        }))
    }

    /// Extends `lease`; `None` when it is no longer this node's (expired, or taken over),
    /// after which the node must not act for the vshard again without a new acquisition.
    pub async fn renew(&self, lease: &Lease) -> Result<Option<Lease>, ClusterError> {
        let sent = BootInstant::now();
        let renewed: Option<i64> = sqlx::query_scalar(
            "UPDATE vshard_leases SET expires = clock_timestamp() + make_interval(secs => $2) \
             WHERE vshard = $3 AND owner = $1 AND epoch = $4 AND expires > clock_timestamp() \
             RETURNING epoch",
        )
        .bind(&self.node)
        .bind(self.timing.seconds())
        .bind(i32::from(lease.vshard))
        .bind(lease.epoch)
        .fetch_optional(&self.pool)
        .await
        .map_err(ClusterError::db("renewing a vshard lease"))?;
        Ok(renewed.map(|epoch| Lease {
            deadline: self.timing.deadline(sent),
            epoch,
            ..*lease
        }))
    }

    /// Gives `lease` up at once (after the vshard's data is flushed and checkpointed), so the
    /// next owner need not wait for it to expire. `false` if it was no longer held.
    pub async fn release(&self, lease: &Lease) -> Result<bool, ClusterError> {
        let done = sqlx::query(
            "UPDATE vshard_leases SET owner = NULL, expires = clock_timestamp() \
             WHERE vshard = $2 AND owner = $1 AND epoch = $3",
        )
        .bind(&self.node)
        .bind(i32::from(lease.vshard))
        .bind(lease.epoch)
        .execute(&self.pool)
        .await
        .map_err(ClusterError::db("releasing a vshard lease"))?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_deadline_comes_a_margin_before_the_lease_ends() {
        let t = Timing::new(Duration::from_secs(10));
        assert_eq!(t.margin, Duration::from_secs(2));
        assert_eq!(
            t.renew_every(),
            Duration::from_millis(3_333) + Duration::from_nanos(333_333)
        );
        let sent = BootInstant::now();
        let lease = Lease {
            vshard: 1,
            epoch: 1,
            deadline: t.deadline(sent),
        };
        assert!(lease.valid(sent + Duration::from_millis(7_999)));
        assert!(!lease.valid(sent + Duration::from_secs(8)));
        // Two renewals may be missed and the third still lands before the deadline.
        assert!(sent + t.renew_every() * 2 < lease.deadline);
    }
}
