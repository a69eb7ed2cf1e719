//! The feeds a dashboard's stored content names. Widgets keep their options as HTML
//! attributes (`feedid="12"`, or `feedid="house:power"` when the dashboard's feed mode is by
//! tag and name); this reads those attributes without interpreting the markup otherwise.

use std::collections::{HashMap, HashSet};

use ynni_core::catalog::FeedRow;

/// Widget options that hold a feed (emoncms's widget catalogue).
const FEED_OPTIONS: [&str; 11] = [
    "feedid",
    "feedid2",
    "topfeedid",
    "botfeedid",
    "feedhumid",
    "feedtemp",
    "minvaluefeed",
    "maxvaluefeed",
    "power",
    "kwhd",
    "mid",
];

/// Every value of a feed option in `content`, in order, repeats included.
pub fn feed_options(content: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let end = tag_end(rest);
        for (name, value) in attributes(&rest[..end]) {
            if FEED_OPTIONS.contains(&name.to_ascii_lowercase().as_str()) && !value.is_empty() {
                out.push(value);
            }
        }
        rest = &rest[end..];
    }
    out
}

/// Where the tag starting at `s` ends: the first `>` outside quotes, or the end.
fn tag_end(s: &str) -> usize {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return i,
            _ => {}
        }
    }
    s.len()
}

/// The attributes of one tag's text (after `<`, before `>`), values entity-decoded.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Skip the element's name.
    let mut rest = tag.trim_start_matches(|c: char| !c.is_whitespace());
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            return out;
        }
        let name_len = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_len].to_string();
        rest = rest[name_len..].trim_start();
        let Some(after_eq) = rest.strip_prefix('=') else {
            out.push((name, String::new()));
            continue;
        };
        let after_eq = after_eq.trim_start();
        let (value, next) = match after_eq.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = &after_eq[1..];
                let close = body.find(q).unwrap_or(body.len());
                (&body[..close], body.get(close + 1..).unwrap_or(""))
            }
            _ => {
                let end = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
                (&after_eq[..end], &after_eq[end..])
            }
        };
        out.push((name, decode_entities(value)));
        rest = next;
    }
}

fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The ids, among `feeds` (the owner's), that the options name: by id, or as `tag:name`.
/// Looked up in maps, so a dashboard naming many feeds costs one pass over each list.
pub fn resolve(options: &[String], feeds: &[FeedRow]) -> Vec<i64> {
    let by_id: HashSet<i64> = feeds.iter().map(|f| f.id).collect();
    let by_name: HashMap<(&str, &str), i64> = feeds
        .iter()
        .map(|f| ((f.tag.as_str(), f.name.as_str()), f.id))
        .collect();
    let mut ids: Vec<i64> = options
        .iter()
        .filter_map(|o| {
            let o = o.trim();
            match o.parse::<i64>() {
                Ok(id) => by_id.contains(&id).then_some(id),
                Err(_) => {
                    let (tag, name) = o.split_once(':')?;
                    by_name.get(&(tag, name)).copied()
                }
            }
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_options_are_read_from_widget_attributes() {
        let content = concat!(
            r#"<div id="1" class="feedvalue" style="position:absolute; top:0px;" feedid="12" decimals="1"></div>"#,
            r#"<div id="2" class="dial" feedid='7' max="3000" minvaluefeed=9></div>"#,
            r#"<div id="3" class="paragraph">feedid="99" is text, not an option</div>"#,
            r#"<div id="4" class="cylinder" topfeedid="house:tank &amp; top" botfeedid=""></div>"#,
            r#"<div id="5" class="heading" title="a > b" feedid="5"></div>"#,
        );
        assert_eq!(
            feed_options(content),
            ["12", "7", "9", "house:tank & top", "5"]
        );
    }

    #[test]
    fn options_resolve_to_the_owners_feeds_only() {
        let feed = |id: i64, tag: &str, name: &str| FeedRow {
            id,
            userid: 1,
            name: name.into(),
            tag: tag.into(),
            public: false,
            engine: 5,
            unit: String::new(),
            process_list: String::new(),
            size: 0,
        };
        let mine = [feed(3, "house", "power"), feed(4, "house", "kwh")];
        let options: Vec<String> = ["3", "4", "3", "house:power", "99", "other:power", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(resolve(&options, &mine), [3, 4]);
    }
}
