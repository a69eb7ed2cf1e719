//! Where a user lives: a user's vshard is fixed by their id (`ynni_core::vshard`, the same
//! function the shard workers of one node use), and a vshard's owner is the live node that
//! ranks it highest (rendezvous hashing, SHA-256 based so that every node, whatever its build,
//! computes the same answer).

use sha2::{Digest, Sha256};

use crate::VSHARDS;

/// The vshard of user `userid`.
pub fn vshard_of(userid: i64) -> u16 {
    // `of` answers below VSHARDS (256), which fits.
    ynni_core::vshard::of(userid, u32::from(VSHARDS)) as u16
}

/// A node's rank for a vshard: the first 8 bytes of SHA-256(node id, 0, vshard).
fn rank(node: &str, vshard: u16) -> u64 {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update([0]);
    h.update(vshard.to_be_bytes());
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The node that should own `vshard` among `nodes` (ties, which need equal hashes, go to the
/// smaller id), or `None` when there are none.
pub fn owner<'a>(vshard: u16, nodes: &[&'a str]) -> Option<&'a str> {
    nodes
        .iter()
        .copied()
        .max_by(|a, b| rank(a, vshard).cmp(&rank(b, vshard)).then(b.cmp(a)))
}

/// The vshards `node` should own among `nodes`.
pub fn vshards_of(node: &str, nodes: &[&str]) -> Vec<u16> {
    (0..VSHARDS)
        .filter(|&v| owner(v, nodes) == Some(node))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_vshard_is_the_shard_workers_vshard() {
        for u in [1, 2, 3, 1000, 123_456] {
            assert_eq!(u32::from(vshard_of(u)), ynni_core::vshard::of(u, 256));
        }
    }

    #[test]
    fn every_vshard_has_one_owner_and_shares_are_even() {
        let nodes = ["a", "b", "c"];
        let shares: Vec<usize> = nodes.iter().map(|n| vshards_of(n, &nodes).len()).collect();
        assert_eq!(shares.iter().sum::<usize>(), usize::from(VSHARDS));
        assert!(
            shares.iter().all(|&s| (50..=120).contains(&s)),
            "{shares:?}"
        );
        assert_eq!(owner(7, &[]), None);
    }

    #[test]
    fn joining_or_leaving_moves_only_the_vshards_that_must_move() {
        let three = ["a", "b", "c"];
        let four = ["a", "b", "c", "d"];
        for v in 0..VSHARDS {
            let before = owner(v, &three);
            let after = owner(v, &four);
            // A vshard moves only to the new node.
            assert!(before == after || after == Some("d"), "{v}");
            // When "b" leaves, only b's vshards move.
            let without_b = owner(v, &["a", "c"]);
            assert!(before == without_b || before == Some("b"), "{v}");
        }
        // The order nodes are listed in makes no difference.
        for v in 0..VSHARDS {
            assert_eq!(owner(v, &["c", "a", "b"]), owner(v, &three));
        }
    }
}
