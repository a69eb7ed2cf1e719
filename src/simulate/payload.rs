//! The exact forms emonhub sends: a plain number per input on `<base>/<node>/<input>`, or one
//! JSON object per reading on `<base>/<node>` with Python's separators and a float `time`;
//! over HTTP, `input/post` with `fulljson` and `time`.

/// A value as Python's `str()` prints it: floats keep a decimal point (`240.0`), counts
/// (`MSG`, `pulse`) are integers.
pub fn number(name: &str, v: f64) -> String {
    if matches!(name, "MSG" | "pulse") || !v.is_finite() {
        return format!("{}", v as i64);
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// emonhub's node JSON: `{"time": 1795829324.0, "MSG": 102, "Vrms": 240.1}`.
pub fn node_json(time: f64, names: &[String], values: &[f64]) -> String {
    let mut out = format!("{{\"time\": {}", number("time", time));
    for (name, v) in names.iter().zip(values) {
        out.push_str(&format!(", {}: {}", quoted(name), number(name, *v)));
    }
    out.push('}');
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
        let names = vec!["MSG".to_string(), "P1".to_string()];
        assert_eq!(
            node_json(1_795_829_324.0, &names, &[5.0, 99.5]),
            r#"{"time": 1795829324.0, "MSG": 5, "P1": 99.5}"#
        );
        assert_eq!(fulljson(&names, &[5.0, 99.5]), r#"{"MSG":5,"P1":99.5}"#);
    }
}
