//! JSON parsing with a bound on how many values it builds. A request's byte size is already
//! limited, but a megabyte of `[1,1,1,…]` is half a million values; counting them while parsing
//! stops such a request before the vectors and maps for all of them exist.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};

/// Why a text was not parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonError {
    Invalid,
    /// More values (scalars and containers, at any depth) than allowed.
    TooLarge,
}

/// Values a request may build while parsing, for a limit of `values` input values: the
/// costliest legitimate shape is `input/bulk` with one value per row (`[t,node,v]`: an array
/// and three scalars per value).
pub(crate) fn budget_for(values: usize) -> usize {
    values.saturating_mul(4).saturating_add(1)
}

/// Parses `text` as one JSON value, building at most `max_values` values.
pub(crate) fn parse(text: &str, max_values: usize) -> Result<Json, JsonError> {
    let budget = Budget {
        left: Cell::new(max_values),
        exceeded: Cell::new(false),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Seed(&budget)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if budget.exceeded.get() => Err(JsonError::TooLarge),
        Err(_) => Err(JsonError::Invalid),
    }
}

struct Budget {
    left: Cell<usize>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn take<E: de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("too many values"))
            }
        }
    }
}

/// Builds a `serde_json::Value` exactly as serde_json's own visitor does, counting each value.
#[derive(Clone, Copy)]
struct Seed<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Json;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        self.0.take::<E>()?;
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        self.0.take::<E>()?;
        Ok(Json::Number(Number::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        self.0.take::<E>()?;
        Ok(Json::Number(Number::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        self.0.take::<E>()?;
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        self.0.take::<E>()?;
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        self.0.take::<E>()?;
        Ok(Json::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        self.0.take::<E>()?;
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        self.0.take::<A::Error>()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        self.0.take::<A::Error>()?;
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self)?;
            // A repeated key keeps its first position and takes the last value, as with
            // serde_json's own parser.
            m.insert(k, v);
        }
        Ok(Json::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_serde_json_within_the_budget() {
        for text in [
            r#"{"a":1,"b":-2,"c":1.5,"d":"x","e":null,"f":true,"a":3}"#,
            r#"[[1,"n",{"x":2}],[2,"m",18446744073709551615,1e300]]"#,
            " [ ] ",
            "\"s\"",
        ] {
            let want: Json = serde_json::from_str(text).expect("valid");
            assert_eq!(parse(text, 100), Ok(want), "{text}");
        }
        for bad in ["", "{", "[1,]", "{a:1}", "1 2", "[1e999]"] {
            assert_eq!(parse(bad, 100), Err(JsonError::Invalid), "{bad}");
        }
    }

    #[test]
    fn stops_at_the_budget() {
        // `[1,2,3]` is four values: the array and its items.
        assert!(parse("[1,2,3]", 4).is_ok());
        assert_eq!(parse("[1,2,3]", 3), Err(JsonError::TooLarge));
        let many = format!("[{}1]", "1,".repeat(1_000_000));
        assert_eq!(parse(&many, 1000), Err(JsonError::TooLarge));
        assert_eq!(parse(r#"{"a":[1,[2,[3]]]}"#, 5), Err(JsonError::TooLarge));
    }
}
