//! The budgeted JSON parser against serde_json's own: within its budget it must read every
//! text exactly as serde_json does (value, duplicate keys, errors), refuse with `TooLarge`
//! exactly when a document holds more values than the budget, and never panic or overflow the
//! stack, whatever the text.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value as Json;

use super::{any_text, finite_f64, number_text, quoted, regex};
use crate::decode::json::{JsonError, budget_for, parse};

/// A JSON document as written, before parsing: duplicate keys and any number text are kept,
/// so the text can be valid or not.
#[derive(Debug, Clone)]
enum Doc {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Doc>),
    Obj(Vec<(String, Doc)>),
}

impl Doc {
    /// The values the parser builds for it: every scalar and container, including the values
    /// of repeated keys that a later one replaces (the budget counts work, not the result).
    fn values(&self) -> usize {
        match self {
            Doc::Arr(items) => 1 + items.iter().map(Doc::values).sum::<usize>(),
            Doc::Obj(entries) => 1 + entries.iter().map(|(_, v)| v.values()).sum::<usize>(),
            _ => 1,
        }
    }

    /// The text, with `ws` around every token.
    fn render(&self, ws: &str, out: &mut String) {
        match self {
            Doc::Null => out.push_str("null"),
            Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Doc::Num(n) => out.push_str(n),
            Doc::Str(s) => out.push_str(&quoted(s)),
            Doc::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws);
                    item.render(ws, out);
                }
                out.push_str(ws);
                out.push(']');
            }
            Doc::Obj(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws);
                    out.push_str(&quoted(key));
                    out.push_str(ws);
                    out.push(':');
                    out.push_str(ws);
                    value.render(ws, out);
                }
                out.push_str(ws);
                out.push('}');
            }
        }
    }

    fn text(&self, ws: &str) -> String {
        let mut out = String::new();
        self.render(ws, &mut out);
        out
    }
}

/// Number text: mostly valid JSON (integers past `i64` and `u64`, floats printed by serde_json,
/// exponents out of `f64`'s range), sometimes PHP's looser forms that JSON refuses (`+1`,
/// `.5`, `5.`, `007`).
fn json_number() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<i64>().prop_map(|i| i.to_string()),
        1 => any::<u64>().prop_map(|u| u.to_string()),
        3 => finite_f64().prop_map(|f| Json::from(f).to_string()),
        2 => regex("-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,8})?([eE][+-]?[0-9]{1,3})?"),
        1 => number_text(),
    ]
}

/// Keys: often the same few (so objects repeat keys), sometimes anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec!["a", "b", "time", "Time", ""]).prop_map(str::to_string),
        any_text(6),
    ]
}

fn doc() -> impl Strategy<Value = Doc> {
    let leaf = prop_oneof![
        Just(Doc::Null),
        any::<bool>().prop_map(Doc::Bool),
        json_number().prop_map(Doc::Num),
        any_text(8).prop_map(Doc::Str),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Doc::Arr),
            proptest::collection::vec((key(), inner), 0..6).prop_map(Doc::Obj),
        ]
    })
}

fn whitespace() -> impl Strategy<Value = &'static str> {
    select(vec!["", " ", "\n\t", " \r\n "])
}

/// Text near JSON: its punctuation, digits, escapes and keywords in any order.
fn json_soup() -> impl Strategy<Value = String> {
    regex(
        "([\\[\\]{}:,\" ]|-?[0-9]{1,3}|[eE.+-]|true|null|fals|\\\\u?[0-9a-fA-F]{0,4}|[a-z]){0,40}",
    )
}

proptest! {
    #![proptest_config(crate::proptest_config(256))]

    /// Valid documents come out as serde_json reads them, with a budget of exactly their
    /// values; one less is `TooLarge`. Invalid ones are `Invalid` for both parsers.
    #[test]
    fn agrees_with_serde_json_on_generated_documents(doc in doc(), ws in whitespace()) {
        let text = doc.text(ws);
        let n = doc.values();
        match serde_json::from_str::<Json>(&text) {
            Ok(want) => {
                prop_assert_eq!(parse(&text, n), Ok(want), "{}", text);
                prop_assert_eq!(parse(&text, n - 1), Err(JsonError::TooLarge), "{}", text);
            }
            // Within the budget an invalid text is never blamed on its size.
            Err(_) => prop_assert_eq!(parse(&text, n), Err(JsonError::Invalid), "{}", text),
        }
    }

    /// Any text: no panic; with an unlimited budget, exactly serde_json's answer; with a small
    /// one, nothing serde_json would not have built.
    #[test]
    fn never_panics_and_agrees_with_serde_json_on_any_text(
        text in prop_oneof![any_text(64), json_soup()],
        budget in 0usize..64,
    ) {
        let want = serde_json::from_str::<Json>(&text).ok();
        prop_assert_eq!(parse(&text, usize::MAX).ok(), want.clone(), "{:?}", text);
        match parse(&text, budget) {
            Ok(v) => prop_assert_eq!(Some(v), want, "{:?}", text),
            Err(JsonError::Invalid) => prop_assert!(want.is_none(), "{:?}", text),
            Err(JsonError::TooLarge) => {}
        }
    }

    /// Deep nesting ends in serde_json's recursion limit (an `Invalid` text), not in a stack
    /// overflow, which would abort the whole process.
    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack(
        depth in 0usize..2_000,
        open in select(vec![("[", "]"), ("{\"a\":", "}")]),
    ) {
        let text = format!("{}1{}", open.0.repeat(depth), open.1.repeat(depth));
        let want = serde_json::from_str::<Json>(&text).ok();
        prop_assert_eq!(parse(&text, usize::MAX).ok(), want);
        // The budget bounds work even where the depth alone would not stop it.
        prop_assert!(parse(&text, budget_for(10)).is_err() || depth < 41);
    }
}
