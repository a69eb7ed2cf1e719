//! The exact forms emonhub sends: a plain number per input on `<base>/<node>/<input>`, or one
//! JSON object per reading on `<base>/<node>` with Python's separators and a float `time`;
//! over HTTP, `input/post` with `fulljson` and `time`.

/// A value as Python's `str()` prints it: floats keep a decimal point (`240.0`); what an
/// emonTx sends as integers (message counter, pulses, Wh counters `E1..`) stays one.
pub fn number(name: &str, v: f64) -> String {
    let integer = matches!(name, "MSG" | "pulse")
        || (name.len() <= 3 && name.starts_with('E') && name[1..].parse::<u8>().is_ok());
    if integer || !v.is_finite() {
        return format!("{}", v as i64);
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// emonhub's node JSON: `{"MSG": 102, "Vrms": 240.1, "time": 1795829324.0}` (Python's
/// separators; emonhub adds `time` after the values).
pub fn node_json(time: f64, names: &[String], values: &[f64]) -> String {
    let mut out = String::from("{");
    for (name, v) in names.iter().zip(values) {
        out.push_str(&format!("{}: {}, ", quoted(name), number(name, *v)));
    }
    out.push_str(&format!("\"time\": {}}}", number("time", time)));
    out
}

/// The compact `fulljson` an HTTP poster sends.
pub fn fulljson(names: &[String], values: &[f64]) -> String {
    let body: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{}:{}", quoted(n), number(n, *v)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_style_numbers_and_separators() {
        assert_eq!(number("Vrms", 240.0), "240.0");
        assert_eq!(number("P1", 123.45), "123.45");
        assert_eq!(number("MSG", 102.0), "102");
        assert_eq!(number("E1", 1501.0), "1501");
        assert_eq!(number("Emeter", 3.0), "3.0");
        let names = vec!["MSG".to_string(), "P1".to_string()];
        assert_eq!(
            node_json(1_795_829_324.0, &names, &[5.0, 99.5]),
            r#"{"MSG": 5, "P1": 99.5, "time": 1795829324.0}"#
        );
        assert_eq!(fulljson(&names, &[5.0, 99.5]), r#"{"MSG":5,"P1":99.5}"#);
    }
}
