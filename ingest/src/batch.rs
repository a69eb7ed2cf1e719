//! What every entry point produces: values for one node at one time.

/// An input value; `None` is a missing value (emoncms's `null`), stored as NaN by feeds.
///
/// A value is never ±infinity or NaN. PHP's `is_numeric` accepts text such as `1e999` and
/// turns it into `INF`, which emoncms then stores in some places and fails to print in others
/// (`json_encode` refuses it); ynni's rule is that a number that is not finite is not a
/// number: it is missing, exactly like `null`. Every way in applies it ([`finite`]), so the
/// write-ahead log, the checkpoints and the live state all hold the same values, and a replay
/// after a crash rebuilds what the live run had.
pub type Value = Option<f64>;

/// At most this many values (name, value pairs) in one request or message, summed over its
/// rows. emonhub sends at most 1000 buffered rows per `input/bulk` request (its `batchsize`)
/// and a frame from an emonTx, emonPi or RFM node carries at most a few dozen values, so a
/// device's request holds well under 50,000; the cap bounds the decoding, the WAL record
/// (about 1.5 MB of JSON at most) and the shard time one request can take.
pub const MAX_VALUES_PER_REQUEST: usize = 50_000;

/// ynni's rule for values that are not finite: they are missing (see [`Value`]).
pub fn finite(v: Value) -> Value {
    v.filter(|x| x.is_finite())
}

/// One node's values at one time, decoded from any input form. The user it belongs to is added
/// by the entry point that authenticated the request or connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Unix seconds.
    pub time: i64,
    /// Filtered node name (emoncms's character rule); never empty (`0` by default).
    pub node: String,
    /// Filtered input names with their values, in the order received; a repeated name keeps its
    /// first position and its last value. Values are finite or missing.
    pub values: Vec<(String, Value)>,
}

impl Decoded {
    pub(crate) fn new(time: i64, node: String) -> Self {
        Self {
            time,
            node,
            values: Vec::new(),
        }
    }

    /// Adds or replaces a value, as a PHP array assignment does; a value that is not finite is
    /// stored as missing. `index` maps names to their position so that large payloads stay
    /// linear.
    pub(crate) fn set(
        &mut self,
        index: &mut std::collections::HashMap<String, usize>,
        name: String,
        value: Value,
    ) {
        let value = finite(value);
        match index.get(&name) {
            Some(&i) => self.values[i].1 = value,
            None => {
                index.insert(name.clone(), self.values.len());
                self.values.push((name, value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_are_not_finite_are_missing() {
        assert_eq!(finite(Some(f64::INFINITY)), None);
        assert_eq!(finite(Some(f64::NEG_INFINITY)), None);
        assert_eq!(finite(Some(f64::NAN)), None);
        assert_eq!(finite(Some(f64::MAX)), Some(f64::MAX));
        assert_eq!(finite(None), None);
        let mut d = Decoded::new(1, "n".into());
        let mut index = std::collections::HashMap::new();
        d.set(&mut index, "a".into(), Some(f64::INFINITY));
        d.set(&mut index, "b".into(), Some(2.0));
        d.set(&mut index, "b".into(), Some(f64::NAN));
        assert_eq!(
            d.values,
            vec![("a".to_string(), None), ("b".to_string(), None)]
        );
    }
}
