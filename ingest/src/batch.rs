//! What every entry point produces: values for one node at one time.

/// An input value; `None` is a missing value (emoncms's `null`), stored as NaN by feeds.
pub type Value = Option<f64>;

/// One node's values at one time, decoded from any input form. The user it belongs to is added
/// by the entry point that authenticated the request or connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Unix seconds.
    pub time: i64,
    /// Filtered node name (emoncms's character rule); never empty (`0` by default).
    pub node: String,
    /// Filtered input names with their values, in the order received; a repeated name keeps its
    /// first position and its last value.
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

    /// Adds or replaces a value, as a PHP array assignment does. `index` maps names to their
    /// position so that large payloads stay linear.
    pub(crate) fn set(
        &mut self,
        index: &mut std::collections::HashMap<String, usize>,
        name: String,
        value: Value,
    ) {
        match index.get(&name) {
            Some(&i) => self.values[i].1 = value,
            None => {
                index.insert(name.clone(), self.values.len());
                self.values.push((name, value));
            }
        }
    }
}
