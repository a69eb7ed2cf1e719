//! emoncms-style routes: `[/emoncms]/<controller>/<action>[/<sub>[/<sub2>]][.<format>]`, or the
//! same path in a `q=` query parameter (what emoncms's Apache rewrite produces).

/// The reply format chosen by the suffix of the last path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Text,
    Csv,
    Md,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub controller: String,
    pub action: String,
    pub subaction: String,
    pub subaction2: String,
    pub format: Format,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// emoncms's wording, including the trailing full stop.
    #[error("URI not acceptable. Unknown format '{format}'.")]
    UnknownFormat { format: String, route: Box<Route> },
}

/// A request path as the web server in front of emoncms hands it on: each segment
/// percent-decoded (`/input/post/emon%20tx` names the node `emon tx`, which [`parse`] then
/// filters to `emontx` as emoncms does). An encoded `/` does not split a segment (a web server
/// refuses it by default); it is dropped, as the filter would drop it anyway.
pub fn decode_path(raw: &str) -> String {
    raw.split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .replace('/', "")
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses a request path (or a `q` value). Characters outside `[.\/_A-Za-z0-9-]` are dropped,
/// as emoncms does, so odd bytes can never reach a handler.
pub fn parse(path: &str) -> Result<Route, RouteError> {
    let filtered: String = path
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '_' | '-'))
        .collect();
    let mut trimmed = filtered.trim_matches('/');
    if let Some(rest) = trimmed.strip_prefix("emoncms")
        && (rest.is_empty() || rest.starts_with('/'))
    {
        trimmed = rest.trim_start_matches('/');
    }
    let mut segments: Vec<String> = trimmed.split('/').map(str::to_string).collect();
    let mut format = Format::Html;
    let mut unknown = None;
    if let Some(last) = segments.last_mut()
        && let Some(dot) = last.find('.')
    {
        // emoncms's route takes the text between the first and the second dot: `list.json.x`
        // is JSON.
        let suffix = last[dot + 1..]
            .split('.')
            .next()
            .unwrap_or_default()
            .to_string();
        last.truncate(dot);
        format = match suffix.as_str() {
            "json" => Format::Json,
            "html" => Format::Html,
            "text" | "txt" => Format::Text,
            "csv" => Format::Csv,
            "md" => Format::Md,
            _ => {
                unknown = Some(suffix);
                Format::Json
            }
        };
    }
    let mut it = segments.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let route = Route {
        controller: next(),
        action: next(),
        subaction: next(),
        subaction2: next(),
        format,
    };
    match unknown {
        Some(format) => Err(RouteError::UnknownFormat {
            format,
            route: Box::new(route),
        }),
        None => Ok(route),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(c: &str, a: &str, s: &str, f: Format) -> Route {
        Route {
            controller: c.into(),
            action: a.into(),
            subaction: s.into(),
            subaction2: String::new(),
            format: f,
        }
    }

    #[test]
    fn paths_are_decoded_a_segment_at_a_time() {
        assert_eq!(decode_path("/input/post/emon%20tx"), "/input/post/emon tx");
        assert_eq!(decode_path("/input/post/a%2Fb"), "/input/post/ab");
        assert_eq!(
            decode_path("/input/post/caf%C3%A9.json"),
            "/input/post/café.json"
        );
        let r = parse(&decode_path("/input/post/emon%20tx.json")).expect("route");
        assert_eq!(r.subaction, "emontx");
    }

    #[test]
    fn suffix_prefix_and_segments() {
        assert_eq!(
            parse("/user/login.json"),
            Ok(r("user", "login", "", Format::Json))
        );
        assert_eq!(
            parse("/user/login"),
            Ok(r("user", "login", "", Format::Html))
        );
        assert_eq!(
            parse("/emoncms/user/login.json"),
            Ok(r("user", "login", "", Format::Json))
        );
        assert_eq!(
            parse("user/login.json/"),
            Ok(r("user", "login", "", Format::Json))
        );
        assert_eq!(
            parse("/input/post/emontx"),
            Ok(r("input", "post", "emontx", Format::Html))
        );
        assert_eq!(parse("/version"), Ok(r("version", "", "", Format::Html)));
        assert_eq!(parse("/"), Ok(r("", "", "", Format::Html)));
        assert_eq!(
            parse("/emoncmsx/a"),
            Ok(r("emoncmsx", "a", "", Format::Html))
        );
        assert_eq!(
            parse("/feed/list.txt"),
            Ok(r("feed", "list", "", Format::Text))
        );
    }

    #[test]
    fn the_format_is_what_stands_between_the_first_and_second_dot() {
        assert_eq!(
            parse("/feed/list.json.x"),
            Ok(r("feed", "list", "", Format::Json))
        );
        assert_eq!(
            parse("/input/get/node.csv.json"),
            parse("/input/get/node.csv")
        );
    }

    #[test]
    fn unknown_format_and_filtering() {
        match parse("/input/list.xml") {
            Err(RouteError::UnknownFormat { format, route }) => {
                assert_eq!(format, "xml");
                assert_eq!(
                    (route.controller.as_str(), route.action.as_str()),
                    ("input", "list")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("/user/lo%gin'\";.json"),
            Ok(r("user", "login", "", Format::Json))
        );
        assert_eq!(
            parse("/user/ünïcode.json"),
            Ok(r("user", "ncode", "", Format::Json))
        );
    }
}
