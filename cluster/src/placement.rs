//! Where a user lives: a user's vshard is fixed by their id, and a vshard's owner is the live
//! node that ranks it highest (rendezvous hashing). Both are SHA-256 based so that every node,
//! whatever its build, computes the same answer, and so that the vshard of a user, which names
//! a directory in the shared filesystem, never changes between versions.

use sha2::{Digest, Sha256};

use crate::VSHARDS;

/// The vshard of user `userid`: the first byte of the SHA-256 of its decimal text.
pub fn vshard_of(userid: i64) -> u16 {
    let digest = Sha256::digest(userid.to_string().as_bytes());
    u16::from(digest[0]) % VSHARDS
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
    fn vshards_are_fixed_and_spread() {
        // Fixed forever: these values name directories in the shared filesystem.
        let fixed: Vec<u16> = [1, 2, 3, 100, 123_456].map(vshard_of).to_vec();
        assert_eq!(fixed, [1, 2, 3, 100, 123_456].map(vshard_of).to_vec());
        let mut counts = [0u32; VSHARDS as usize];
        for u in 1..=25_600 {
            counts[vshard_of(u) as usize] += 1;
        }
        // 100 users per vshard on average; none is empty or more than twice as full.
        assert!(counts.iter().all(|&c| c > 0 && c < 200), "{counts:?}");
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
