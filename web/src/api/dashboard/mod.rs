//! emoncms's dashboard module API (`dashboard/list`, `create`, `delete`, `clone`, `getcontent`,
//! `setcontent`, `set`) with its JSON shapes, so dashboards made for emoncms and the scripts
//! managing them keep working. Every change is scoped to the caller's own dashboards (emoncms's
//! `delete` was not). emoncms's page addresses (`dashboard/view?id=`, `dashboard/view/<alias>`,
//! `dashboard/edit?id=`, `dashboard/list`) lead to ynni's dashboard page, which draws the
//! widgets from `dashboard/view.json` ([`view`]).

mod refs;
mod view;

pub use refs::{feed_options, resolve as resolve_feeds};

use axum::response::{IntoResponse, Redirect};
use serde_json::{Value, json};
use ynni_core::catalog::{DashboardFields, DashboardRow};

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;
use crate::route::Format;

const NOT_SAVED: &str = "Error: Invalid dashboard content, content not saved";

/// The UI page for one of emoncms's dashboard page addresses, keeping the parameters that
/// pick the dashboard (and a share link's token).
fn page_address(call: &Call<'_>) -> String {
    let route = call.route;
    let mut q = form_urlencoded::Serializer::new(String::new());
    for key in ["id", "share", "username", "alias"] {
        if let Some(v) = call.params.get(key) {
            q.append_pair(key, v);
        }
    }
    if route.action == "view" && !route.subaction.is_empty() && call.params.get("alias").is_none() {
        q.append_pair("alias", &route.subaction);
    }
    if route.action == "edit" {
        q.append_pair("edit", "1");
    }
    let q = q.finish();
    if q.is_empty() {
        "/app/dashboards".into()
    } else {
        format!("/app/dashboards?{q}")
    }
}

pub async fn handle(call: &Call<'_>) -> ApiResult {
    let action = call.route.action.as_str();
    if call.route.format == Format::Html && matches!(action, "view" | "edit" | "list" | "") {
        return Ok(Redirect::to(&page_address(call)).into_response());
    }
    if action == "view" {
        return view::view_json(call).await;
    }
    let Some(c) = call.caller else {
        return Ok(reply::json_false());
    };
    let userid = c.user.id;
    let catalog = &call.state.catalog;
    let p = call.params;
    let id = || {
        p.get_or_post("id")
            .and_then(|i| i.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    match action {
        "list" => {
            let rows = catalog.dashboards_for_user(userid).await?;
            Ok(reply::json(Value::Array(
                rows.iter().map(list_json).collect(),
            )))
        }
        _ if !c.write => Ok(reply::json_false()),
        "create" => {
            let _one = call.state.creates.lock(userid).await?;
            Ok(reply::json(
                match catalog.create_dashboard(userid).await? {
                    Some(new) => json!(new),
                    None => json!(false),
                },
            ))
        }
        "delete" => Ok(reply::json(json!(
            catalog.delete_dashboard(userid, id()).await?
        ))),
        "clone" => {
            let _one = call.state.creates.lock(userid).await?;
            Ok(reply::json(
                match catalog.clone_dashboard(userid, id()).await? {
                    Some(new) => json!(new),
                    None => json!(false),
                },
            ))
        }
        "getcontent" => Ok(reply::json(match catalog.dashboard(userid, id()).await? {
            Some(d) => row_json(&d),
            None => Value::Null,
        })),
        "setcontent" => {
            let id: i64 = p
                .post("id")
                .and_then(|i| i.trim().parse().ok())
                .unwrap_or(0);
            let raw = p.post("content").unwrap_or("");
            // emoncms's clients encode the content once more inside the form; a second
            // percent-decoding (no `+` to space) undoes it.
            let content = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| ApiError::fail(NOT_SAVED))?
                .into_owned();
            if !safe_content(&content) {
                return Err(ApiError::fail(NOT_SAVED));
            }
            // emoncms's MySQL column refuses more than this (strict mode).
            if content.len() > ynni_core::catalog::dashboards::MAX_DASHBOARD_CONTENT {
                return Err(ApiError::fail("Dashboard not updated"));
            }
            let height: i64 = p
                .post("height")
                .and_then(|h| h.trim().parse().ok())
                .unwrap_or(600)
                .clamp(0, 100_000);
            if catalog
                .set_dashboard_content(userid, id, &content, height)
                .await?
            {
                Ok(reply::json(
                    json!({"success": true, "message": "Dashboard updated"}),
                ))
            } else {
                Err(ApiError::fail("Dashboard not updated"))
            }
        }
        "set" => {
            let fields = p
                .get_or_post("fields")
                .and_then(|f| serde_json::from_str::<Value>(f).ok())
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            let f = fields_of(&fields);
            let id = id();
            if catalog.set_dashboard_fields(userid, id, &f).await? {
                let alias = catalog
                    .dashboard(userid, id)
                    .await?
                    .map(|d| d.alias)
                    .unwrap_or_default();
                Ok(reply::json(
                    json!({"success": true, "message": "Field updated", "id": id, "alias": alias}),
                ))
            } else {
                Err(ApiError::fail("Field could not be updated "))
            }
        }
        _ => Ok(reply::json_false()),
    }
}

fn list_json(d: &DashboardRow) -> Value {
    json!({
        "id": d.id, "name": d.name, "alias": d.alias, "showdescription": d.showdescription,
        "description": d.description, "main": d.main, "published": d.published, "public": d.public,
    })
}

/// emoncms's row: every column a string.
fn row_json(d: &DashboardRow) -> Value {
    let b = |v: bool| if v { "1" } else { "0" };
    json!({
        "id": d.id.to_string(), "userid": d.userid.to_string(), "content": d.content,
        "height": d.height.to_string(), "name": d.name, "alias": d.alias,
        "description": d.description, "main": b(d.main), "public": b(d.public),
        "published": b(d.published), "showdescription": b(d.showdescription),
        "backgroundcolor": d.backgroundcolor, "gridsize": d.gridsize.to_string(),
        "fullscreen": b(d.fullscreen), "feedmode": d.feedmode,
    })
}

/// Content that could run script in a viewer's browser is refused, not rewritten (emoncms
/// refuses what its AntiXSS would change).
fn safe_content(html: &str) -> bool {
    let lower = html.to_ascii_lowercase();
    let tags = [
        "<script", "<iframe", "<object", "<embed", "<link", "<meta", "<base", "<form",
    ];
    // A URL as a browser reads it in an attribute: character references decoded, and tabs,
    // newlines and other control characters dropped (`jav&#97;script:`, `java\tscript:`).
    let url_text = as_url_text(&lower);
    if tags.iter().any(|t| lower.contains(t))
        || ["javascript:", "vbscript:", "data:text/html"]
            .iter()
            .any(|scheme| url_text.contains(scheme))
        || lower.contains("srcdoc")
    {
        return false;
    }
    // An event handler attribute: whitespace (a form feed too) or a quote or slash, `on`,
    // letters, `=`.
    let bytes = lower.as_bytes();
    for i in 0..bytes.len().saturating_sub(3) {
        let boundary = bytes[i].is_ascii_whitespace() || matches!(bytes[i], b'/' | b'"' | b'\'');
        if boundary && bytes[i + 1] == b'o' && bytes[i + 2] == b'n' {
            let rest = &bytes[i + 3..];
            let letters = rest.iter().take_while(|c| c.is_ascii_lowercase()).count();
            let after = rest[letters..].iter().find(|c| !c.is_ascii_whitespace());
            if letters > 0 && after == Some(&b'=') {
                return false;
            }
        }
    }
    true
}

/// `lower` (already lower case) with numeric character references and the named ones that
/// spell a URL's punctuation decoded, then ASCII whitespace and control characters dropped.
fn as_url_text(lower: &str) -> String {
    let mut out = String::with_capacity(lower.len());
    let mut rest = lower;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (decoded, used) = reference(rest).unwrap_or(('&', 1));
        out.push(decoded);
        rest = &rest[used..];
    }
    out.push_str(rest);
    out.retain(|c| !c.is_ascii_whitespace() && !c.is_ascii_control());
    out
}

/// The character a reference at the start of `s` (`&#97;`, `&#x61`, `&colon;`) stands for,
/// and its length; the `;` is optional, as browsers read numeric references without it.
fn reference(s: &str) -> Option<(char, usize)> {
    const NAMED: [(&str, char); 6] = [
        ("&colon;", ':'),
        ("&tab;", '\t'),
        ("&newline;", '\n'),
        ("&sol;", '/'),
        ("&lpar;", '('),
        ("&rpar;", ')'),
    ];
    if let Some((name, c)) = NAMED.iter().find(|(name, _)| s.starts_with(name)) {
        return Some((*c, name.len()));
    }
    let body = s.strip_prefix("&#")?;
    let (digits, radix, skip) = match body.strip_prefix('x') {
        Some(hex) => (hex, 16, 3),
        None => (body, 10, 2),
    };
    let n = digits.chars().take_while(|c| c.is_digit(radix)).count();
    if n == 0 {
        return None;
    }
    // Leading zeros are allowed, and any number of them; a value past char's range is
    // U+FFFD, which spells nothing.
    let value = u32::from_str_radix(digits[..n].trim_start_matches('0'), radix)
        .ok()
        .or(Some(0).filter(|_| digits[..n].chars().all(|c| c == '0')))
        .and_then(char::from_u32)
        .unwrap_or('\u{fffd}');
    let semicolon = usize::from(digits[n..].starts_with(';'));
    Some((value, skip + n + semicolon))
}

fn keep(s: &str, ok: impl Fn(char) -> bool, max: usize) -> String {
    s.chars().filter(|c| ok(*c)).take(max).collect()
}

fn word(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || matches!(c, '_' | '-')
}

/// emoncms's alias: lower case, `&` as "and", `'` dropped, anything else not `[a-z0-9]` one
/// `-` per run, at most 20 characters.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s
        .to_lowercase()
        .replace('&', "and")
        .replace('\'', "")
        .chars()
    {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.chars().take(20).collect()
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !matches!(s.trim(), "" | "0" | "false"),
        _ => false,
    }
}

fn fields_of(m: &serde_json::Map<String, Value>) -> DashboardFields {
    let text = |k: &str| {
        m.get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
    };
    DashboardFields {
        name: text("name").map(|s| keep(&s, word, 30)),
        alias: text("alias").map(|s| slug(&s)),
        description: text("description").map(|s| keep(&s, word, 255)),
        main: m.get("main").map(truthy),
        public: m.get("public").map(truthy),
        published: m.get("published").map(truthy),
        showdescription: m.get("showdescription").map(truthy),
        backgroundcolor: text("backgroundcolor")
            .map(|s| keep(&s.to_lowercase(), |c| c.is_ascii_hexdigit(), 6)),
        gridsize: text("gridsize").and_then(|s| keep(&s, |c| c.is_ascii_digit(), 3).parse().ok()),
        fullscreen: m.get("fullscreen").map(truthy),
        feedmode: text("feedmode")
            .map(|s| keep(&s, word, 8))
            .filter(|s| s == "feedid" || s == "tagname"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_that_could_run_script_is_refused() {
        let widget = r#"<div id="1" class="feedvalue" style="position:absolute; top:20px; left:40px; width:100px; height:40px;" feedid="3" decimals="1"></div>"#;
        assert!(safe_content(widget));
        assert!(safe_content("<p>Money on the line: 5 £</p>"));
        assert!(safe_content("<p>Fish &amp; chips &#163;5 &#x3a; once</p>"));
        for bad in [
            "<script>alert(1)</script>",
            r#"<img src=x onerror="alert(1)">"#,
            r#"<div onclick = "x()">"#,
            r#"<a href="javascript:alert(1)">x</a>"#,
            "<iframe src=//evil>",
            r#"<svg/onload=alert(1)>"#,
            "<img src=x\x0conerror=alert(1)>",
            r#"<a href="jav&#97;script:alert(1)">x</a>"#,
            r#"<a href="jav&#x61script&colon;alert(1)">x</a>"#,
            r#"<a href="&#0000106;avascript:alert(1)">x</a>"#,
            "<a href=\"java\tscript:alert(1)\">x</a>",
            r#"<a href="data:text/html,<b>x</b>">x</a>"#,
        ] {
            assert!(!safe_content(bad), "{bad}");
        }
    }

    #[test]
    fn settings_are_filtered_as_emoncms_filters_them() {
        assert_eq!(slug("Mum & Dad's House!"), "mum-and-dads-house-");
        assert_eq!(
            slug("a very long alias that goes on"),
            "a-very-long-alias-th"
        );
        let f = fields_of(
            serde_json::from_str::<Value>(
                r##"{"name":"<b>Hi</b>","main":"1","public":true,"backgroundcolor":"#FFAA00zz","gridsize":"20px","feedmode":"evil"}"##,
            )
            .unwrap()
            .as_object()
            .unwrap(),
        );
        assert_eq!(f.name.as_deref(), Some("bHib"));
        assert_eq!((f.main, f.public), (Some(true), Some(true)));
        assert_eq!(f.backgroundcolor.as_deref(), Some("ffaa00"));
        assert_eq!(f.gridsize, Some(20));
        assert_eq!(f.feedmode, None);
    }
}
