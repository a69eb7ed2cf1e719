//! Query strings and form bodies, urlencoded or multipart: any bytes are parsed without
//! panicking, and what a client encodes is what the handlers read (the last value of a
//! repeated key; query and form apart; a body read as a form only when its type says so or
//! says nothing).

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::string::{RegexGeneratorStrategy, string_regex};

use super::Params;

fn regex(pattern: &str) -> RegexGeneratorStrategy<String> {
    string_regex(pattern).expect("the test's own pattern is valid")
}

fn any_text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=max).prop_map(|c| c.into_iter().collect::<String>())
}

/// Query-string-like text: keys, `=`, `&`, `+`, percent escapes good and bad.
fn query_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any_text(40),
        regex("([a-z=&+;]|%[0-9A-Fa-f]{0,2}|%[^0-9A-Fa-f]|%C3|%FF){0,40}"),
    ]
}

/// Keys (often the same few, so that they repeat) and values, any text.
fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        select(vec!["a", "apikey", "q", "data", ""]).prop_map(str::to_string),
        any_text(8),
    ];
    vec((key, any_text(12)), 0..8)
}

/// Content types a form body is read under.
const FORM_TYPES: [&str; 4] = [
    "application/x-www-form-urlencoded",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/x-www-form-urlencoded; charset=UTF-8",
    " application/x-www-form-urlencoded ;x=y",
];

/// Content types whose body is not a form.
const OTHER_TYPES: [&str; 7] = [
    "",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencodedx",
    "application/x-www-form-urlencoded,text/plain",
    "application/octet-stream",
];

fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The value PHP's `$_GET`/`$_POST` would give for `key`: the last one.
fn last_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// A multipart body of `parts` (name, file name for a file part, value).
fn multipart(boundary: &str, parts: &[(String, Option<String>, String)]) -> String {
    let mut body = String::new();
    for (name, file, value) in parts {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
        ));
        if let Some(file) = file {
            body.push_str(&format!("; filename=\"{file}\""));
        }
        body.push_str(&format!("\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

proptest! {
    #![proptest_config(crate::proptest_config(256))]

    /// Any query, content type and body: no panic, and the accessors agree with each other.
    #[test]
    fn any_request_parses(
        query in proptest::option::of(query_text()),
        content_type in proptest::option::of(prop_oneof![
            select(FORM_TYPES.to_vec()).prop_map(str::to_string),
            select(OTHER_TYPES.to_vec()).prop_map(str::to_string),
            any_text(24),
        ]),
        body in prop_oneof![
            vec(any::<u8>(), 0..64),
            query_text().prop_map(String::into_bytes),
        ],
        keys in vec(prop_oneof![Just("a".to_string()), any_text(3)], 1..4),
    ) {
        let p = Params::parse(query.as_deref(), content_type.as_deref(), &body);
        if content_type.as_deref().is_some_and(|ct| OTHER_TYPES.contains(&ct)) || body.is_empty() {
            prop_assert!(p.form.is_empty());
        }
        for key in &keys {
            prop_assert_eq!(p.post_or_get(key), p.post(key).or(p.get(key)));
            prop_assert_eq!(p.get_or_post(key), p.get(key).or(p.post(key)));
            if let Some(object) = p.json_object(key) {
                let parsed = serde_json::from_str::<serde_json::Value>(p.get(key).unwrap_or(""));
                prop_assert_eq!(parsed.ok(), Some(serde_json::Value::Object(object)));
            }
        }
    }

    /// Encoded pairs come back decoded, the last of a repeated key winning, query and form
    /// kept apart; a body is a form under a form type or none, and ignored under any other.
    #[test]
    fn encoded_pairs_round_trip(
        query in pairs(),
        form in pairs(),
        content_type in prop_oneof![
            Just(None::<&'static str>),
            select(FORM_TYPES.to_vec()).prop_map(Some),
            select(OTHER_TYPES.to_vec()).prop_map(Some),
        ],
    ) {
        let q = encode(&query);
        let body = encode(&form);
        let p = Params::parse(Some(&q), content_type, body.as_bytes());
        let is_form = content_type.is_none_or(|ct| FORM_TYPES.contains(&ct));
        let keys = query.iter().chain(&form).map(|(k, _)| k.as_str());
        for key in keys.chain(["a", "absent"]) {
            prop_assert_eq!(p.get(key), last_value(&query, key), "{:?} in {:?}", key, q);
            let want = if is_form { last_value(&form, key) } else { None };
            prop_assert_eq!(p.post(key), want, "{:?} in {:?}", key, body);
        }
    }
}

proptest! {
    // Each case starts a runtime for the multipart parser.
    #![proptest_config(crate::proptest_config(64))]

    /// A multipart body's text fields are form parameters (the last of a repeated name), its
    /// file fields are not; a damaged body or any boundary gives no panic.
    #[test]
    fn multipart_bodies(
        boundary in prop_oneof![
            4 => regex("[A-Za-z0-9_-]{1,40}"),
            1 => regex("[A-Za-z0-9'()+_,./:=?-]{1,40}"),
            1 => any_text(8),
        ],
        parts in vec(
            (
                regex("[a-z]{1,6}"),
                proptest::option::weighted(0.2, regex("[a-z]{1,6}\\.txt")),
                regex("[ -~]{0,20}"),
            ),
            0..6,
        ),
        damage in proptest::option::weighted(0.3, (any::<Index>(), any::<bool>())),
    ) {
        let text = multipart(&boundary, &parts);
        let mut body = text.into_bytes();
        if let Some((at, cut)) = &damage {
            let i = at.index(body.len());
            if *cut {
                body.truncate(i);
            } else {
                body[i] ^= 0x20;
            }
        }
        let p = block_on(Params::parse_multipart(
            Some("a=1"),
            &boundary,
            bytes::Bytes::from(body),
        ));
        prop_assert_eq!(p.get("a"), Some("1"));
        let well_formed = damage.is_none()
            && !boundary.is_empty()
            && boundary.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if well_formed {
            // Only text fields count; a file part's name may be a text field's too.
            let fields: Vec<(String, String)> = parts
                .iter()
                .filter(|(_, file, _)| file.is_none())
                .map(|(name, _, value)| (name.clone(), value.clone()))
                .collect();
            for (name, _, _) in &parts {
                prop_assert_eq!(p.post(name), last_value(&fields, name), "{:?}", parts);
            }
        }
    }
}
