//! A monotonic clock that keeps counting while the machine is suspended.
//!
//! `std::time::Instant` reads `CLOCK_MONOTONIC` on Linux, which stops while the system (or the
//! virtual machine) is suspended. A lease holder that measures its local deadline on such a
//! clock would, after a suspend longer than its lease, wake up believing the lease still runs
//! while the database's clock has moved on and another node has taken the vshard: two owners.
//! `CLOCK_BOOTTIME` is the same clock plus the time spent suspended, so a deadline measured on
//! it passes during a suspend exactly as it passes during a pause (SIGSTOP) or a stall.
//!
//! Elsewhere (non-Linux Unix) `CLOCK_MONOTONIC` is the best available.
//!
//! What no clock inside the machine sees: a virtual machine paused by its hypervisor (a pause
//! command, a live migration, a snapshot restored) may have its clocks set back as if no time
//! had passed. Such a pause longer than the lease's margin is covered only by the checks that
//! do not depend on time (the log and checkpoint rules in `ynni_ingest::shard::fence`).

use std::ops::Add;
use std::time::Duration;

/// A moment on the boot-time clock; only differences and order mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootInstant(Duration);

#[cfg(target_os = "linux")]
const CLOCK: libc::clockid_t = libc::CLOCK_BOOTTIME;
#[cfg(not(target_os = "linux"))]
const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;

impl BootInstant {
    /// The current moment.
    pub fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        let rc = unsafe { libc::clock_gettime(CLOCK, &mut ts) };
        // Lease deadlines are read on this clock: a reading of 0 would keep every deadline in
        // the future, so a failure stops the caller instead (the kernel has had the clock
        // since 2.6.39; a sandbox that refuses the call must not make leases last forever).
        assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME) failed");
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
        Self(Duration::new(secs, nanos))
    }

    /// Time since this moment.
    pub fn elapsed(self) -> Duration {
        Self::now().saturating_duration_since(self)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for BootInstant {
    type Output = Self;

    fn add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_with_real_time() {
        let a = BootInstant::now();
        std::thread::sleep(Duration::from_millis(20));
        let b = BootInstant::now();
        assert!(b > a);
        let gap = b.saturating_duration_since(a);
        assert!(gap >= Duration::from_millis(20), "{gap:?}");
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
        assert!(a + Duration::from_secs(1) > b);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn counts_at_least_the_monotonic_clock() {
        // BOOTTIME = MONOTONIC + time suspended, so it is never behind it.
        let mut mono = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid pointer, supported clock.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut mono) };
        let boot = BootInstant::now();
        let mono = Duration::new(mono.tv_sec as u64, mono.tv_nsec as u32);
        assert!(boot.0 >= mono);
    }
}
