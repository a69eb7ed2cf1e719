//! Property tests of what a shard writes and reads back after a crash: its WAL records
//! ([`Record`]) and its checkpointed state ([`ShardState`]).
//!
//! Both must decode any bytes without panicking (a damaged record or checkpoint is an error,
//! never a crash), hold only finite or missing values whatever the bytes, and give back
//! exactly what was encoded, to the bit, except that a value that is not finite has become
//! missing (ynni's rule, see [`crate::batch::Value`]).

use std::collections::{BTreeMap, HashMap};

use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::Value as Json;

use super::record::{FeedWrite, Record};
use super::state::ShardState;
use crate::batch::{Decoded, Value, finite};
use crate::process::StateKind;

/// Any text of up to `max` characters, control characters and all of Unicode included.
fn any_text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=max).prop_map(|c| c.into_iter().collect::<String>())
}

/// Any value: missing, any bit pattern (infinities, NaNs with payloads, subnormals), and the
/// edges.
fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(None),
        any::<u64>().prop_map(|b| Some(f64::from_bits(b))),
        select(vec![
            0.0,
            -0.0,
            0.1,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ])
        .prop_map(Some),
    ]
}

fn all_finite_or_missing<'a>(values: impl IntoIterator<Item = &'a Value>) -> bool {
    values.into_iter().all(|v| v.is_none_or(f64::is_finite))
}

/// A change to encoded bytes: what a bad disk, a bug or a hand edit could do.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Cut(Index),
    Insert(Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let snippet = prop_oneof![
        select(vec![
            "1e999",
            "-1e999",
            "1e308",
            "NaN",
            "null",
            "-",
            "\"",
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "0",
            "\\u0000",
            "18446744073709551616",
            "\"WhAccumulator\"",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        any::<Index>().prop_map(Mutation::Cut),
        (any::<Index>(), snippet).prop_map(|(at, s)| Mutation::Insert(at, s)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        match m {
            Mutation::Flip(at, mask) if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes[i] ^= mask;
            }
            Mutation::Flip(..) => {}
            Mutation::Cut(at) => bytes.truncate(at.index(bytes.len() + 1)),
            Mutation::Insert(at, s) => {
                let tail = bytes.split_off(at.index(bytes.len() + 1));
                bytes.extend_from_slice(s);
                bytes.extend(tail);
            }
        }
    }
    bytes
}

fn batch() -> impl Strategy<Value = Decoded> {
    (
        any::<i64>(),
        any_text(8),
        vec((any_text(8), any_value()), 0..6),
    )
        .prop_map(|(time, node, values)| Decoded { time, node, values })
}

fn feed_write() -> impl Strategy<Value = FeedWrite> {
    (
        any::<u32>(),
        vec((any::<i64>(), any_value()), 0..8),
        any::<i64>(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(feed, points, now, single, rewrite, start)| FeedWrite {
            feed,
            points,
            now,
            single,
            rewrite,
            start,
        })
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (any::<i64>(), any::<bool>(), vec(batch(), 0..4))
            .prop_map(|(userid, http, batches)| Record::new(userid, http, &batches)),
        (any::<i64>(), feed_write()).prop_map(|(userid, w)| Record::feed_write(userid, w)),
    ]
}

/// Every value of a record, in order.
fn record_values(r: &Record) -> Vec<&Value> {
    let batches = r
        .batches
        .iter()
        .flat_map(|b| b.values.iter().map(|(_, v)| v));
    let points = r.feed.iter().flat_map(|w| w.points.iter().map(|(_, v)| v));
    batches.chain(points).collect()
}

fn record_bits(r: &Record) -> Vec<Option<u64>> {
    record_values(r)
        .into_iter()
        .map(|v| v.map(f64::to_bits))
        .collect()
}

fn state_kind() -> impl Strategy<Value = StateKind> {
    select(vec![
        StateKind::KwhToKwhd,
        StateKind::RateChange,
        StateKind::KwhToPower,
        StateKind::WhAccumulator,
        StateKind::KwhAccumulator,
    ])
}

fn shard_state() -> impl Strategy<Value = ShardState> {
    let point = || (any::<i64>(), any_value());
    (
        hash_map(any::<i64>(), point(), 0..6),
        hash_map(any::<i64>(), point(), 0..6),
        (
            hash_map(any::<u32>(), point(), 0..6),
            hash_map(any::<u32>(), proptest::option::of(point()), 0..4),
        ),
        hash_map((state_kind(), any::<u32>()), point(), 0..6),
        proptest::collection::btree_map(
            (any::<i64>(), any::<i64>()),
            (any::<i64>(), any::<i64>(), any::<i64>()),
            0..4,
        ),
    )
        .prop_map(
            |(input_last, input_newest, (feed_last, feed_seed), process, usage)| ShardState {
                input_last,
                input_newest,
                feed_last,
                feed_seed,
                process,
                usage: usage
                    .into_iter()
                    .map(|(k, (http_values, mqtt_values, points))| {
                        let h = ynni_core::catalog::Handled {
                            http_values,
                            mqtt_values,
                            points,
                        };
                        (k, h)
                    })
                    .collect(),
            },
        )
}

/// A state with every value that is not finite made missing: what decoding must give back.
fn normalised(s: &ShardState) -> ShardState {
    fn keep<K: Clone + Eq + std::hash::Hash>(
        m: &HashMap<K, (i64, Value)>,
    ) -> HashMap<K, (i64, Value)> {
        m.iter()
            .map(|(k, &(t, v))| (k.clone(), (t, finite(v))))
            .collect()
    }
    ShardState {
        input_last: keep(&s.input_last),
        input_newest: keep(&s.input_newest),
        feed_last: keep(&s.feed_last),
        feed_seed: s
            .feed_seed
            .iter()
            .map(|(&k, seed)| (k, seed.map(|(t, v)| (t, finite(v)))))
            .collect(),
        process: keep(&s.process),
        usage: s.usage.clone(),
    }
}

type Points<K> = BTreeMap<K, (i64, Option<u64>)>;

/// A state in sorted maps of bits, so that comparisons tell `-0.0` from `0.0` (and NaN
/// compares at all).
#[derive(Debug, PartialEq)]
struct View {
    input_last: Points<i64>,
    input_newest: Points<i64>,
    feed_last: Points<u32>,
    feed_seed: BTreeMap<u32, Option<(i64, Option<u64>)>>,
    process: Points<(StateKind, u32)>,
}

fn view(s: &ShardState) -> View {
    fn bits<K: Clone + Ord>(m: &HashMap<K, (i64, Value)>) -> Points<K> {
        m.iter()
            .map(|(k, &(t, v))| (k.clone(), (t, v.map(f64::to_bits))))
            .collect()
    }
    View {
        input_last: bits(&s.input_last),
        input_newest: bits(&s.input_newest),
        feed_last: bits(&s.feed_last),
        feed_seed: s
            .feed_seed
            .iter()
            .map(|(&k, seed)| (k, seed.map(|(t, v)| (t, v.map(f64::to_bits)))))
            .collect(),
        process: bits(&s.process),
    }
}

fn state_values(s: &ShardState) -> impl Iterator<Item = &Value> {
    let maps = [&s.input_last, &s.input_newest];
    maps.into_iter()
        .flat_map(|m| m.values().map(|(_, v)| v))
        .chain(s.feed_last.values().map(|(_, v)| v))
        .chain(s.feed_seed.values().flatten().map(|(_, v)| v))
        .chain(s.process.values().map(|(_, v)| v))
}

proptest! {
    #![proptest_config(crate::proptest_config(256))]

    /// A record built from any batches keeps finite values bit for bit and makes the others
    /// missing; encoding then decoding gives it back exactly.
    #[test]
    fn records_round_trip(
        userid in any::<i64>(),
        http in any::<bool>(),
        batches in vec(batch(), 0..4),
    ) {
        let record = Record::new(userid, http, &batches);
        prop_assert_eq!(record.batches.len(), batches.len());
        for (b, logged) in batches.iter().zip(&record.batches) {
            prop_assert_eq!((logged.time, &logged.node), (b.time, &b.node));
            let kept: Vec<(&String, Option<u64>)> =
                logged.values.iter().map(|(n, v)| (n, v.map(f64::to_bits))).collect();
            let want: Vec<(&String, Option<u64>)> =
                b.values.iter().map(|(n, v)| (n, finite(*v).map(f64::to_bits))).collect();
            prop_assert_eq!(kept, want);
        }
        let back = Record::decode(&record.encode())
            .ok_or_else(|| TestCaseError::fail("an encoded record does not decode"))?;
        prop_assert_eq!(record_bits(&back), record_bits(&record));
        prop_assert_eq!(back, record);
    }

    /// The same for points written straight to a feed.
    #[test]
    fn feed_writes_round_trip(userid in any::<i64>(), write in feed_write()) {
        let raw: Vec<Option<u64>> =
            write.points.iter().map(|(_, v)| finite(*v).map(f64::to_bits)).collect();
        let record = Record::feed_write(userid, write);
        prop_assert_eq!(record_bits(&record), raw);
        let back = Record::decode(&record.encode())
            .ok_or_else(|| TestCaseError::fail("an encoded record does not decode"))?;
        prop_assert_eq!(record_bits(&back), record_bits(&record));
        prop_assert_eq!(back, record);
    }

    /// Any bytes, and damaged encodings: decoding never panics, and a record it accepts holds
    /// only finite or missing values and encodes back to itself.
    #[test]
    fn records_decode_any_bytes_to_finite_values(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..128),
            (record(), vec(mutation(), 1..4)).prop_map(|(r, m)| mutate(r.encode(), &m)),
        ],
    ) {
        if let Some(r) = Record::decode(&bytes) {
            prop_assert!(all_finite_or_missing(record_values(&r)), "{:?}", r);
            prop_assert_eq!(Record::decode(&r.encode()), Some(r));
        }
    }

    /// A state's encoding decodes to the same state, to the bit, with values that are not
    /// finite made missing.
    #[test]
    fn states_round_trip(state in shard_state()) {
        let back = ShardState::decode(&state.encode())
            .map_err(|e| TestCaseError::fail(format!("an encoded state does not decode: {e}")))?;
        prop_assert!(all_finite_or_missing(state_values(&back)));
        prop_assert_eq!(view(&back), view(&normalised(&state)));
    }

    /// Checkpoints written before `input_newest` existed still load, with it empty.
    #[test]
    fn states_without_input_newest_load(state in shard_state()) {
        let encoded = state.encode();
        // An empty state is stored as no bytes at all: nothing to leave out.
        prop_assume!(!encoded.is_empty());
        let mut stored: Json = serde_json::from_slice(&encoded)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let removed = stored.as_object_mut().and_then(|m| m.remove("input_newest"));
        prop_assert!(removed.is_some());
        let old = serde_json::to_vec(&stored).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = ShardState::decode(&old).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut want = normalised(&state);
        want.input_newest.clear();
        prop_assert_eq!(view(&back), view(&want));
    }

    /// Any bytes, and damaged encodings: decoding never panics (a damaged checkpoint is an
    /// error the shard reports), and a state it accepts holds only finite or missing values
    /// and encodes back to itself.
    #[test]
    fn states_decode_any_bytes_to_finite_values(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..128),
            (shard_state(), vec(mutation(), 1..4)).prop_map(|(s, m)| mutate(s.encode(), &m)),
        ],
    ) {
        if let Ok(s) = ShardState::decode(&bytes) {
            prop_assert!(all_finite_or_missing(state_values(&s)), "{:?}", s);
            let again = ShardState::decode(&s.encode())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(view(&again), view(&s));
        }
    }
}
