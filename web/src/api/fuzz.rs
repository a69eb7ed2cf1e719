//! What the dispatcher does with a request's path and query before any handler runs: a query
//! hanging off the path after `&` (what emoncms's rewrite produces), the query and form
//! parameters, and the route (from the path or `q=`). Any path and query are taken apart
//! without panicking, into routes of allowed characters only; well-formed routes come back
//! as written, whatever characters outside the set they carry.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::string::{RegexGeneratorStrategy, string_regex};

use super::split_query_in_path;
use crate::params::Params;
use crate::route::{self, Format, Route, RouteError};

fn regex(pattern: &str) -> RegexGeneratorStrategy<String> {
    string_regex(pattern).expect("the test's own pattern is valid")
}

fn any_text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=max).prop_map(|c| c.into_iter().collect::<String>())
}

/// The suffixes that name a reply format.
const KNOWN_FORMATS: [&str; 6] = ["json", "html", "text", "txt", "csv", "md"];

/// Characters a route drops.
const JUNK: [char; 8] = ['%', '\'', '"', ' ', 'é', '&', '\u{0}', '~'];

/// The characters a route keeps.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '_' | '-')
}

/// A route's parts hold allowed characters only and never a `/`.
fn check_route(r: &Route) -> Result<(), TestCaseError> {
    for part in [&r.controller, &r.action, &r.subaction, &r.subaction2] {
        prop_assert!(part.chars().all(|c| allowed(c) && c != '/'), "{:?}", r);
    }
    Ok(())
}

fn path_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any_text(48),
        regex("(/|[a-z]{1,8}|\\.[a-z]{0,4}|&[a-z]{1,3}=[a-z0-9%]{0,4}|%2F|emoncms|\\?|#| ){0,12}"),
    ]
}

proptest! {
    #![proptest_config(crate::proptest_config(256))]

    /// Any path and query: no panic; the path loses everything from its first `&`, which
    /// goes in front of the query; the route holds allowed characters only.
    #[test]
    fn any_path_and_query(
        path in path_text(),
        query in proptest::option::of(prop_oneof![any_text(24), path_text()]),
    ) {
        let (route_path, full_query) = split_query_in_path(&path, query.as_deref());
        prop_assert!(!route_path.contains('&'));
        match path.split_once('&') {
            Some((before, extra)) => {
                prop_assert_eq!(route_path, before);
                let want = match query.as_deref() {
                    Some(q) if !q.is_empty() => format!("{extra}&{q}"),
                    _ => extra.to_string(),
                };
                prop_assert_eq!(full_query.clone(), Some(want));
            }
            None => {
                prop_assert_eq!(route_path, path.as_str());
                prop_assert_eq!(full_query.as_deref(), query.as_deref());
            }
        }
        let params = Params::parse(full_query.as_deref(), None, &[]);
        let target = params.get("q").unwrap_or(route_path);
        match route::parse(target) {
            Ok(r) => check_route(&r)?,
            Err(RouteError::UnknownFormat { format, route: r }) => {
                check_route(&r)?;
                prop_assert!(format.chars().all(|c| allowed(c) && c != '/'), "{:?}", format);
                prop_assert!(!KNOWN_FORMATS.contains(&format.as_str()), "{:?}", format);
            }
        }
    }

    /// `[/emoncms]/<controller>/<action>/…[.<format>][/]`, with characters outside the set
    /// anywhere: the route as written (four levels at most), or the unknown format.
    #[test]
    fn routes_round_trip(
        levels in vec(regex("[a-z0-9_][a-z0-9_-]{0,8}"), 1..=6)
            .prop_filter("`emoncms` first is the prefix", |l| l[0] != "emoncms"),
        suffix in proptest::option::of(prop_oneof![
            select(KNOWN_FORMATS.to_vec()),
            select(vec!["xml", "", "JSON"]),
        ]),
        prefix in any::<bool>(),
        trailing in any::<bool>(),
        junk in vec((any::<Index>(), select(JUNK.to_vec())), 0..4),
    ) {
        let mut path = String::new();
        if prefix {
            path.push_str("/emoncms");
        }
        for level in &levels {
            path.push('/');
            path.push_str(level);
        }
        if let Some(s) = suffix {
            path.push('.');
            path.push_str(s);
        }
        if trailing {
            path.push('/');
        }
        let mut chars: Vec<char> = path.chars().collect();
        for (at, c) in &junk {
            let i = at.index(chars.len() + 1);
            chars.insert(i, *c);
        }
        let with_junk: String = chars.into_iter().collect();

        let level = |i: usize| levels.get(i).cloned().unwrap_or_default();
        let format = match suffix {
            None | Some("html") => Format::Html,
            Some("json") => Format::Json,
            Some("text" | "txt") => Format::Text,
            Some("csv") => Format::Csv,
            Some("md") => Format::Md,
            // An unknown format is reported, with the route read as JSON.
            Some(_) => Format::Json,
        };
        let written = Route {
            controller: level(0),
            action: level(1),
            subaction: level(2),
            subaction2: level(3),
            format,
        };
        let want = match suffix {
            Some(s) if !KNOWN_FORMATS.contains(&s) => {
                Err(RouteError::UnknownFormat { format: s.to_string(), route: Box::new(written) })
            }
            _ => Ok(written),
        };
        prop_assert_eq!(route::parse(&with_junk), want, "{:?}", with_junk);
    }
}
