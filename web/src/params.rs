//! Request parameters the way emoncms reads them: `get` looks only at the query string,
//! `post` only at a form body (urlencoded or multipart, as PHP's `$_POST`), and a repeated key
//! means its last value.

/// Query and form parameters of one request.
#[derive(Debug, Clone, Default)]
pub struct Params {
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
}

impl Params {
    /// `query` is the raw query string; `body` is parsed only when `content_type` says it is
    /// a urlencoded form or says nothing (curl and emonhub send forms without a type).
    pub fn parse(query: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Self {
        let query = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = match content_type {
            None => true,
            Some(ct) => ct.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            }),
        };
        let form = if is_form && !body.is_empty() {
            form_urlencoded::parse(body).into_owned().collect()
        } else {
            Vec::new()
        };
        Self { query, form }
    }

    /// Like [`Params::parse`] for a `multipart/form-data` body: its text fields become the
    /// form parameters (file parts are not form parameters, as in PHP). A malformed body
    /// yields no form parameters.
    pub async fn parse_multipart(query: Option<&str>, boundary: &str, body: bytes::Bytes) -> Self {
        let mut params = Self::parse(query, Some("multipart/form-data"), &[]);
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        while let Ok(Some(field)) = multipart.next_field().await {
            if field.file_name().is_some() {
                continue;
            }
            let Some(name) = field.name().map(str::to_string) else {
                continue;
            };
            match field.text().await {
                Ok(value) => params.form.push((name, value)),
                Err(_) => break,
            }
        }
        params
    }

    /// No query or form parameters at all.
    pub fn is_empty(&self) -> bool {
        self.query.is_empty() && self.form.is_empty()
    }

    /// A query-string parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        last(&self.query, key)
    }

    /// A form-body parameter.
    pub fn post(&self, key: &str) -> Option<&str> {
        last(&self.form, key)
    }

    /// A form-body parameter, else a query-string one.
    pub fn post_or_get(&self, key: &str) -> Option<&str> {
        self.post(key).or_else(|| self.get(key))
    }

    /// A query-string parameter, else a form-body one (emoncms's apikey precedence).
    pub fn get_or_post(&self, key: &str) -> Option<&str> {
        self.get(key).or_else(|| self.post(key))
    }

    /// A query-string parameter holding a JSON object (`fields={…}`), if it parses as one.
    pub fn json_object(&self, key: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        match serde_json::from_str(self.get(key)?) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        }
    }
}

fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// PHP's notion of a "falsy" string: empty or exactly `"0"`.
pub fn php_falsy(v: Option<&str>) -> bool {
    matches!(v, None | Some("") | Some("0"))
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_form_are_kept_apart() {
        let p = Params::parse(Some("a=1&b=x+y&a=2"), None, b"a=3&c=%C3%A9");
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("b"), Some("x y"));
        assert_eq!(p.post("a"), Some("3"));
        assert_eq!(p.post("c"), Some("é"));
        assert_eq!(p.get("c"), None);
        assert_eq!(p.post_or_get("b"), Some("x y"));
        assert_eq!(p.get_or_post("a"), Some("2"));
    }

    #[test]
    fn non_form_bodies_are_ignored_and_garbage_is_harmless() {
        let p = Params::parse(None, Some("application/json"), b"{\"a\":1}");
        assert_eq!(p.post("a"), None);
        let p = Params::parse(
            Some("%%%=%zz&&=="),
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            b"\xff\xfe=1",
        );
        assert_eq!(p.post("\u{fffd}\u{fffd}"), Some("1"));
    }

    #[tokio::test]
    async fn multipart_text_fields_are_form_parameters() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nfile\r\n\
                    --XyZ--\r\n";
        let p = Params::parse_multipart(Some("a=1"), "XyZ", bytes::Bytes::from(body)).await;
        assert_eq!(p.post("username"), Some("alice"));
        assert_eq!(p.post("f"), None);
        assert_eq!(p.get("a"), Some("1"));
        let p = Params::parse_multipart(None, "XyZ", bytes::Bytes::from_static(b"garbage")).await;
        assert_eq!(p.post("username"), None);
    }

    #[test]
    fn falsy() {
        assert!(php_falsy(None));
        assert!(php_falsy(Some("")));
        assert!(php_falsy(Some("0")));
        assert!(!php_falsy(Some("00")));
    }
}
