//! The open-file budget the listeners share: every HTTP and MQTT connection is an open file,
//! and so are feed files, WAL segments and the catalog. Each listener caps its connections at
//! its share of the soft limit left after a reserve, so neither can starve the other or the
//! data files (where `accept` would fail with EMFILE).

/// File descriptors kept for everything but connections.
const RESERVED_FDS: u64 = 256;

/// Which listener asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// A quarter of the budget.
    Http,
    /// Half of the budget (devices hold their connections open).
    Mqtt,
}

/// `configured`, lowered to the listener's share of the open-file limit (at least 1).
pub fn connection_limit(configured: usize, listener: Listener) -> usize {
    let Some(soft) = soft_limit() else {
        return configured.max(1);
    };
    let divisor = match listener {
        Listener::Http => 4,
        Listener::Mqtt => 2,
    };
    let fit = soft.saturating_sub(RESERVED_FDS) / divisor;
    configured
        .min(usize::try_from(fit).unwrap_or(usize::MAX))
        .max(1)
}

/// The process's soft open-file limit (`None`: unknown or unlimited).
fn soft_limit() -> Option<u64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0;
    // `rlim_t` is 32 bits wide on 32-bit ARM (a Raspberry Pi), 64 elsewhere.
    #[allow(clippy::useless_conversion)]
    let soft = u64::from(rl.rlim_cur);
    (got && rl.rlim_cur != libc::RLIM_INFINITY).then_some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_fit_under_the_open_file_limit_together() {
        let http = connection_limit(usize::MAX, Listener::Http);
        let mqtt = connection_limit(usize::MAX, Listener::Mqtt);
        if let Some(soft) = soft_limit() {
            assert!((http + mqtt) as u64 + RESERVED_FDS <= soft.max(RESERVED_FDS + 3));
        }
        assert_eq!(connection_limit(3, Listener::Http), 3.min(http));
        assert!(connection_limit(0, Listener::Mqtt) >= 1);
    }
}
