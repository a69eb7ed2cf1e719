//! Which vshard a user lives in: the unit of ownership that shard workers (on one node) and
//! cluster nodes (DESIGN §5) divide users by. Fixed forever for a given count, since shard logs
//! and, in a cluster, leases are kept per vshard.

/// The number of vshards every installation uses.
pub const VSHARDS: u32 = 256;

/// The vshard of user `userid` among `vshards`: a multiplicative (Fibonacci) hash, so
/// consecutive user ids spread over all of them.
pub fn of(userid: i64, vshards: u32) -> u32 {
    let h = (userid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    (h % u64::from(vshards.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_spread_over_every_vshard_and_stay_put() {
        // Fixed: changing these would move users away from their logs.
        assert_eq!([1, 2, 3, 1000].map(|u| of(u, VSHARDS)), [185, 114, 44, 153]);
        let mut counts = [0u32; VSHARDS as usize];
        for u in 1..=25_600 {
            counts[of(u, VSHARDS) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50 && c < 150), "{counts:?}");
        assert_eq!(of(7, 0), 0);
    }
}
