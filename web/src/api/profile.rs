//! `user/set`'s per-field character filters: emoncms strips, rather than rejects, characters a
//! field may not hold. They also keep markup out of anything a page later shows.

use serde_json::{Map, Value};
use ynni_core::catalog::ProfileUpdate;

/// PHP's `\w` without the `u` flag: ASCII letters, digits and `_`.
fn word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn space(c: char) -> bool {
    c.is_ascii_whitespace()
}

fn keep(s: &str, allowed: impl Fn(char) -> bool) -> String {
    s.chars().filter(|&c| allowed(c)).collect()
}

/// A field's value as text: strings as they are, numbers and booleans printed, anything else
/// (missing, null, arrays, objects) empty, as PHP's string cast leaves them.
fn field(data: &Map<String, Value>, key: &str) -> String {
    match data.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(true)) => "1".into(),
        _ => String::new(),
    }
}

/// Builds the full profile from `user/set`'s `data` object. An unknown time zone becomes
/// `UTC` (emoncms's register rule) so a later `user/timezone` can never fail.
pub fn from_json(data: &Map<String, Value>) -> ProfileUpdate {
    let unicode_text =
        |c: char| c.is_alphanumeric() || c == '_' || space(c) || c == '-' || c == '.';
    let timezone = keep(&field(data, "timezone"), |c| {
        word(c) || matches!(c, '-' | '.' | '\\' | '/')
    });
    ProfileUpdate {
        gravatar: keep(&field(data, "gravatar"), |c| {
            word(c) || space(c) || matches!(c, '-' | '.' | '@')
        }),
        name: keep(&field(data, "name"), unicode_text),
        location: keep(&field(data, "location"), unicode_text),
        timezone: if ynni_core::timezone::is_listed(&timezone) {
            timezone
        } else {
            "UTC".into()
        },
        language: keep(&field(data, "language"), |c| {
            word(c) || space(c) || matches!(c, '-' | '.')
        }),
        bio: keep(&field(data, "bio"), unicode_text),
        tags: keep(&field(data, "tags"), |c| {
            word(c) || space(c) || matches!(c, '{' | '}' | '"' | ',' | ':' | '-' | '.')
        }),
        startingpage: keep(&field(data, "startingpage"), |c| {
            c.is_alphanumeric() || space(c) || matches!(c, '_' | '-' | '?' | '#' | '=' | '/')
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_each_field_and_blanks_missing_ones() {
        let v = json!({
            "name": "Zoë <script>alert(1)</script>",
            "location": "Caerdydd, Cymru",
            "timezone": "Europe/London",
            "bio": 42,
            "gravatar": "me@example.com",
            "startingpage": "graph?x=1#top",
        });
        let p = from_json(v.as_object().expect("object"));
        assert_eq!(p.name, "Zoë scriptalert1script");
        assert_eq!(p.location, "Caerdydd Cymru");
        assert_eq!(p.timezone, "Europe/London");
        assert_eq!(p.bio, "42");
        assert_eq!(p.gravatar, "me@example.com");
        assert_eq!(p.startingpage, "graph?x=1#top");
        assert_eq!(p.language, "");
        assert_eq!(p.tags, "");
    }

    #[test]
    fn unknown_timezone_becomes_utc() {
        let v = json!({"timezone": "Mars/Olympus"});
        assert_eq!(from_json(v.as_object().expect("object")).timezone, "UTC");
        let v = json!({});
        assert_eq!(from_json(v.as_object().expect("object")).timezone, "UTC");
    }
}
