//! `input/bulk` with any parameters and bodies (plain, `c=1` hex of zlib, `cb=1` zlib body),
//! and with well-formed rows whose values and times must come back exactly, however the body
//! is compressed.

use std::io::Write;

use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::Value as Json;

use super::{
    Bits, NOW, any_text, assign, bits, check_batch, json_value, name_text, quoted, regex, value,
    value_text,
};
use crate::batch::{MAX_VALUES_PER_REQUEST, Value};
use crate::decode::names::{filter_name, filter_node};
use crate::decode::time::clamp_time;
use crate::decode::{BulkParams, BulkResult, DecodeError, MAX_INFLATED_BYTES, decode_bulk};

fn zlib(text: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(text).expect("compressing into memory");
    e.finish().expect("compressing into memory")
}

/// The errors `input/bulk` documents (a bad node is reported in [`BulkResult::error`]).
fn is_bulk_error(e: &DecodeError) -> bool {
    matches!(
        e,
        DecodeError::BulkInvalidJson | DecodeError::BulkInvalidHex | DecodeError::BulkLastItemEmpty
    ) || *e
        == DecodeError::TooManyValues {
            limit: MAX_VALUES_PER_REQUEST,
        }
        || *e
            == DecodeError::InflatedTooLarge {
                limit: MAX_INFLATED_BYTES,
            }
}

/// What every successful decoding promises: batches that keep theirs, no more values than the
/// cap in all, and no error but a bad node's.
fn check_result(r: &BulkResult) -> Result<(), TestCaseError> {
    for b in &r.batches {
        check_batch(b)?;
    }
    let total: usize = r.batches.iter().map(|b| b.values.len()).sum();
    prop_assert!(total <= MAX_VALUES_PER_REQUEST, "{} values", total);
    prop_assert!(matches!(r.error, None | Some(DecodeError::BulkNodeObject)));
    Ok(())
}

/// Any JSON value, shallow: what a row's items may be.
fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        value().prop_map(|v| v.map_or(Json::Null, Json::from)),
        value_text().prop_map(Json::String),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            proptest::collection::vec((name_text(), inner), 0..4)
                .prop_map(|entries| Json::Object(entries.into_iter().collect())),
        ]
    })
}

/// Bodies shaped like bulk data but with anything anywhere: rows of any items, rows that
/// are not arrays, short rows, objects and arrays as nodes.
fn bulk_like_text() -> impl Strategy<Value = String> {
    let row = prop_oneof![
        3 => proptest::collection::vec(any_json(), 0..6).prop_map(Json::Array),
        1 => any_json(),
    ];
    proptest::collection::vec(row, 0..6).prop_map(|rows| Json::Array(rows).to_string())
}

/// Any `data` text.
fn data_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any_text(48),
        regex("[\\[\\]{}:,\" a-z0-9.eE+-]{0,48}"),
        bulk_like_text(),
    ]
}

/// Bytes for a `cb=1` body: anything, a zlib header over arbitrary deflate data, or a valid
/// stream that was then cut short or had a byte changed.
fn zlib_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::collection::vec(any::<u8>(), 0..256).prop_map(|deflate| {
            let mut z = vec![0x78, 0x9c];
            z.extend(deflate);
            z
        }),
        (
            bulk_like_text(),
            0u32..=9,
            any::<Index>(),
            1u8..=255,
            any::<bool>()
        )
            .prop_map(|(text, level, at, mask, cut)| {
                let mut z = zlib(text.as_bytes(), level);
                let i = at.index(z.len());
                if cut {
                    z.truncate(i);
                } else {
                    z[i] ^= mask;
                }
                z
            }),
    ]
}

/// A batch as compared: time, node, and values with their bits.
type Shown = (i64, String, Bits);

/// A row's node: text or a number, as emonhub sends either.
#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Number(u32),
}

/// A well-formed row: `[t, node, v1, v2, …, {"name": v, …}]`.
#[derive(Debug, Clone)]
struct Row {
    t: i64,
    node: Node,
    values: Vec<Value>,
    named: Option<Vec<(String, Value)>>,
}

impl Row {
    fn text(&self) -> String {
        let node = match &self.node {
            Node::Text(s) => quoted(s),
            Node::Number(n) => n.to_string(),
        };
        let mut items = vec![self.t.to_string(), node];
        items.extend(self.values.iter().map(|v| json_value(*v)));
        if let Some(named) = &self.named {
            let entries: Vec<String> = named
                .iter()
                .map(|(k, v)| format!("{}:{}", quoted(k), json_value(*v)))
                .collect();
            items.push(format!("{{{}}}", entries.join(",")));
        }
        format!("[{}]", items.join(","))
    }

    /// The batch it must give, with time reference `t0`; `None` for a row with no items after
    /// the node, which is skipped.
    fn batch(&self, t0: i64) -> Option<Shown> {
        if self.values.is_empty() && self.named.is_none() {
            return None;
        }
        let node = match &self.node {
            Node::Text(s) => filter_node(s),
            Node::Number(n) => filter_node(&n.to_string()),
        };
        let mut values = Vec::new();
        for (i, v) in self.values.iter().enumerate() {
            assign(&mut values, (i + 1).to_string(), *v);
        }
        if let Some(named) = &self.named {
            // JSON merges repeated keys first; the filtered names then merge the same way.
            let mut object = Vec::new();
            for (k, v) in named {
                assign(&mut object, k.clone(), *v);
            }
            for (k, v) in object {
                assign(&mut values, filter_name(&k), v);
            }
        }
        Some((clamp_time(t0.saturating_add(self.t)), node, bits(&values)))
    }
}

fn row() -> impl Strategy<Value = Row> {
    let node = prop_oneof![
        3 => name_text().prop_map(Node::Text),
        1 => any::<u32>().prop_map(Node::Number),
    ];
    let key = prop_oneof![
        select(vec!["a", "b", "a!", "1", "MSG"]).prop_map(str::to_string),
        any_text(6),
    ];
    (
        -1_000_000i64..1_000_000,
        node,
        proptest::collection::vec(value(), 0..6),
        proptest::option::of(proptest::collection::vec((key, value()), 0..5)),
    )
        .prop_map(|(t, node, values, named)| Row {
            t,
            node,
            values,
            named,
        })
}

/// Where the rows' times count from.
#[derive(Debug, Clone, Copy)]
enum Reference {
    /// `time=`: absolute.
    Time(i64),
    /// `sentat=`: the client's clock when it sent; rows are relative to it.
    Sentat(i64),
    /// `offset=`: subtracted like `sentat` (emoncms's behaviour).
    Offset(i64),
    /// None: the last row is "now".
    LastRow,
}

fn reference() -> impl Strategy<Value = Reference> {
    // Beyond ±2^33 s, to see the times clamped.
    let t = -(1i64 << 34)..(1i64 << 34);
    prop_oneof![
        t.clone().prop_map(Reference::Time),
        t.clone().prop_map(Reference::Sentat),
        t.prop_map(Reference::Offset),
        Just(Reference::LastRow),
    ]
}

fn rows_text(rows: &[Row]) -> String {
    let rows: Vec<String> = rows.iter().map(Row::text).collect();
    format!("[{}]", rows.join(","))
}

proptest! {
    #![proptest_config(crate::proptest_config(256))]

    /// Any parameters: no panic, only documented errors (the hex error only in the `c=1`
    /// form, the inflation limit only for compressed data), and bounded batches.
    #[test]
    fn any_parameters(
        data in proptest::option::of(data_text()),
        hex_zlib in any::<bool>(),
        body in proptest::option::of(zlib_like_bytes()),
        sentat in proptest::option::of(value_text()),
        offset in proptest::option::of(value_text()),
        time in proptest::option::of(value_text()),
    ) {
        let p = BulkParams {
            data: data.as_deref(),
            hex_zlib,
            body_zlib: body.as_deref(),
            sentat: sentat.as_deref(),
            offset: offset.as_deref(),
            time: time.as_deref(),
        };
        match decode_bulk(&p, NOW) {
            Ok(r) => check_result(&r)?,
            Err(e) => {
                prop_assert!(is_bulk_error(&e), "undocumented error {:?}", e);
                if e == DecodeError::BulkInvalidHex {
                    prop_assert!(hex_zlib && body.is_none());
                }
                if matches!(e, DecodeError::InflatedTooLarge { .. }) {
                    prop_assert!(hex_zlib || body.is_some());
                }
            }
        }
    }

    /// Arbitrary and damaged zlib data, as a `cb=1` body and as `c=1` hex: no panic, bounded
    /// batches, and both forms give the same answer (a stream that does not inflate is a JSON
    /// error in one and a hex error in the other).
    #[test]
    fn arbitrary_compressed_bodies(body in zlib_like_bytes(), upper in any::<bool>()) {
        let as_body = decode_bulk(
            &BulkParams { body_zlib: Some(&body), ..Default::default() },
            NOW,
        );
        let hex = if upper { hex::encode_upper(&body) } else { hex::encode(&body) };
        let as_hex = decode_bulk(
            &BulkParams { data: Some(&hex), hex_zlib: true, ..Default::default() },
            NOW,
        );
        match &as_body {
            Ok(r) => check_result(r)?,
            Err(e) => {
                prop_assert!(is_bulk_error(e) && *e != DecodeError::BulkInvalidHex, "{:?}", e);
            }
        }
        match (&as_body, &as_hex) {
            (Err(DecodeError::BulkInvalidJson), Err(DecodeError::BulkInvalidHex)) => {}
            (a, b) => prop_assert_eq!(a, b),
        }
    }

    /// Well-formed rows: each row with items gives one batch, at its time from the reference,
    /// with the very values sent (positions named `1`, `2`, …, named objects by their filtered
    /// names). Plain, `cb=1` and `c=1` bodies decode alike, at any compression level.
    #[test]
    fn rows_round_trip_however_compressed(
        rows in proptest::collection::vec(row(), 1..8),
        reference in reference(),
        level in 0u32..=9,
        ws in select(vec!["", " ", "\n"]),
    ) {
        let text = rows_text(&rows);
        let text = format!("{ws}{text}{ws}");
        let param = |t: i64| t.to_string();
        let (sentat, offset, time) = match reference {
            Reference::Sentat(s) => (Some(param(s)), None, None),
            Reference::Offset(o) => (None, Some(param(o)), None),
            Reference::Time(t) => (None, None, Some(param(t))),
            Reference::LastRow => (None, None, None),
        };
        let t0 = match reference {
            // The reference is not bounded, only each row's resulting time.
            Reference::Time(t) => t,
            Reference::Sentat(s) | Reference::Offset(s) => NOW.saturating_sub(s),
            Reference::LastRow => NOW.saturating_sub(rows[rows.len() - 1].t),
        };
        let base = BulkParams {
            sentat: sentat.as_deref(),
            offset: offset.as_deref(),
            time: time.as_deref(),
            ..Default::default()
        };
        let plain = decode_bulk(&BulkParams { data: Some(&text), ..base }, NOW)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        check_result(&plain)?;
        prop_assert_eq!(&plain.error, &None);
        let got: Vec<Shown> = plain
            .batches
            .iter()
            .map(|b| (b.time, b.node.clone(), bits(&b.values)))
            .collect();
        let want: Vec<Shown> = rows.iter().filter_map(|r| r.batch(t0)).collect();
        prop_assert_eq!(got, want, "{}", text);

        let z = zlib(text.as_bytes(), level);
        let body = decode_bulk(&BulkParams { body_zlib: Some(&z), ..base }, NOW);
        prop_assert_eq!(body, Ok(plain.clone()));
        let hex = format!("{ws}{}{ws}", hex::encode(&z));
        let hexed = decode_bulk(&BulkParams { data: Some(&hex), hex_zlib: true, ..base }, NOW);
        prop_assert_eq!(hexed, Ok(plain));
    }
}

proptest! {
    // Each case builds and decodes some 50,000 values.
    #![proptest_config(crate::proptest_config(6))]

    /// However the values are spread over rows (positions or named objects), a request at
    /// the cap is decoded whole and one value more is refused whole.
    #[test]
    fn the_value_cap_counts_every_row(
        over in any::<bool>(),
        rows in 1usize..200,
        named_last in any::<bool>(),
    ) {
        let n = MAX_VALUES_PER_REQUEST + usize::from(over);
        let per_row = n / rows;
        let mut items: Vec<String> = Vec::new();
        for r in 0..rows {
            let count = if r + 1 == rows { n - per_row * (rows - 1) } else { per_row };
            let values = if named_last && r + 1 == rows {
                let entries: Vec<String> = (0..count).map(|i| format!("\"k{i}\":1")).collect();
                format!("{{{}}}", entries.join(","))
            } else {
                vec!["1"; count].join(",")
            };
            items.push(format!("[0,\"n{r}\",{values}]"));
        }
        let text = format!("[{}]", items.join(","));
        let r = decode_bulk(
            &BulkParams { data: Some(&text), time: Some("5"), ..Default::default() },
            NOW,
        );
        if over {
            prop_assert_eq!(r, Err(DecodeError::TooManyValues { limit: MAX_VALUES_PER_REQUEST }));
        } else {
            let r = r.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let total: usize = r.batches.iter().map(|b| b.values.len()).sum();
            prop_assert_eq!(total, n);
        }
    }
}
