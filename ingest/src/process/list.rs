//! Process lists: emoncms's stored form (`1:5,2:0.1,process__log_to_feed:7`) and its JSON set
//! form (`[{"fn":"process__log_to_feed","args":["5"]}]`), with emoncms's validation messages.

use serde_json::Value as Json;

use super::catalog::{ArgType, Context, lookup};
use super::parsed::ProcessList;
use crate::decode::numbers::php_numeric;

/// The most steps a list may have. emoncms sets no limit, but each step runs for every value
/// an input is given, and a virtual feed's list for every point of a graph, on the shard's
/// thread (every account of the shard waits): real lists have a few steps, a few dozen at most.
pub const MAX_STEPS: usize = 128;

/// One step as stored: a key (numeric id or `module__function`) and its arguments, unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStep {
    pub key: String,
    pub args: Vec<String>,
}

/// Splits a stored list. Steps are not trimmed or dropped (an empty step is an unknown key
/// that stops the list when it runs, as in emoncms); only an empty list has no steps.
pub fn parse_stored(list: &str) -> Vec<RawStep> {
    if list.is_empty() {
        return Vec::new();
    }
    list.split(',')
        .map(|step| {
            let mut parts = step.split(':');
            let key = parts.next().unwrap_or("").to_string();
            RawStep {
                key,
                args: parts.map(str::to_string).collect(),
            }
        })
        .collect()
}

/// Whether a stored list has a step whose result depends on earlier values (accumulators,
/// energy integration, daily totals, rates): running it again on an old value would count it
/// twice. A list kept in memory asks its parsed form ([`ProcessList::has_stateful_steps`]).
pub fn has_stateful_steps(list: &str) -> bool {
    ProcessList::parse(list).has_stateful_steps()
}

/// What a validator needs to know about the user's resources.
pub trait Ownership {
    fn owns_feed(&self, id: &str) -> bool;
    fn owns_input(&self, id: &str) -> bool;
}

/// Why a list was refused; `Display` is emoncms's text (including its missing process name in
/// the argument-count message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// emoncms's text ends at the colon: no detail follows.
    #[error("Invalid process list format: ")]
    Format,
    #[error("Process list must be an array")]
    NotArray,
    #[error("Missing process key in process list at index {0}")]
    MissingKey(String),
    #[error("Invalid or missing args in process list at index {0}")]
    BadArgs(String),
    #[error("Invalid process process key:{0}")]
    UnknownProcess(String),
    #[error("Invalid number of arguments for process: ")]
    ArgCount,
    #[error("Invalid feed")]
    InvalidFeed,
    #[error("Invalid input")]
    InvalidInput,
    #[error("Invalid schedule")]
    InvalidSchedule,
    #[error("Value is not numeric")]
    NotNumeric,
    #[error("Invalid characters in arg")]
    InvalidText,
    /// ynni's own limit ([`MAX_STEPS`]).
    #[error("Too many processes in the list: at most 128")]
    TooLong,
}

fn text_ok(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_alphanumeric() || c.is_whitespace() || matches!(c, '{' | '}' | '_' | '/' | '.' | '-')
    })
}

fn arg_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        Json::Bool(b) => {
            if *b {
                "1".into()
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

/// Validates a JSON list for `ctx` and returns its stored form, with numeric ids where a
/// process has one.
pub fn from_json(json: &str, ctx: Context, owner: &dyn Ownership) -> Result<String, ListError> {
    let parsed: Json = serde_json::from_str(json).map_err(|_| ListError::Format)?;
    // A JSON object is walked like a PHP array: its keys are the indexes in messages.
    let steps: Vec<(String, &Json)> = match &parsed {
        Json::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        Json::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        _ => return Err(ListError::NotArray),
    };
    if steps.len() > MAX_STEPS {
        return Err(ListError::TooLong);
    }
    let mut stored = Vec::with_capacity(steps.len());
    for (i, step) in steps {
        let key = match step.get("fn") {
            None | Some(Json::Null) => return Err(ListError::MissingKey(i)),
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let key = key.as_str();
        let args: Vec<String> = match step.get("args") {
            Some(Json::Array(a)) => a.iter().map(arg_text).collect(),
            _ => return Err(ListError::BadArgs(i)),
        };
        let def = lookup(key)
            .filter(|d| d.allowed_in(ctx) && !d.deleted && key.starts_with("process__"))
            .ok_or_else(|| ListError::UnknownProcess(key.to_string()))?;
        if args.len() != def.args.len() {
            return Err(ListError::ArgCount);
        }
        for (spec, arg) in def.args.iter().zip(&args) {
            match spec.kind {
                ArgType::FeedId if !owner.owns_feed(arg) => return Err(ListError::InvalidFeed),
                ArgType::InputId if !owner.owns_input(arg) => return Err(ListError::InvalidInput),
                ArgType::ScheduleId => return Err(ListError::InvalidSchedule),
                ArgType::Value if php_numeric(arg).is_none() => return Err(ListError::NotNumeric),
                ArgType::Text if !text_ok(arg) => return Err(ListError::InvalidText),
                // emoncms takes anything here, but a separator would split the stored list
                // into steps nothing above checked (another feed to log to, more than
                // MAX_STEPS steps).
                ArgType::None if arg.contains([',', ':']) => return Err(ListError::InvalidText),
                _ => {}
            }
        }
        let head = def.id.map_or_else(|| def.key(), |id| id.to_string());
        stored.push(
            std::iter::once(head)
                .chain(args)
                .collect::<Vec<_>>()
                .join(":"),
        );
    }
    Ok(stored.join(","))
}

/// The JSON form of a stored list, for `input/process/get`: keys as `process__<fn>` (unknown
/// keys are kept as stored).
pub fn to_json(list: &str) -> Json {
    Json::Array(
        parse_stored(list)
            .into_iter()
            .map(|s| {
                let key = lookup(&s.key).map_or(s.key.clone(), |d| d.key());
                serde_json::json!({"fn": key, "args": s.args})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mine;
    impl Ownership for Mine {
        fn owns_feed(&self, id: &str) -> bool {
            matches!(id, "5" | "7")
        }
        fn owns_input(&self, id: &str) -> bool {
            id == "3"
        }
    }

    #[test]
    fn a_list_longer_than_ynni_runs_is_refused_and_a_stored_one_cut() {
        struct All;
        impl Ownership for All {
            fn owns_feed(&self, _: &str) -> bool {
                true
            }
            fn owns_input(&self, _: &str) -> bool {
                true
            }
        }
        let step = r#"{"fn":"process__scale","args":["2"]}"#;
        let list = |n: usize| format!("[{}]", vec![step; n].join(","));
        assert!(from_json(&list(MAX_STEPS), Context::Input, &All).is_ok());
        assert_eq!(
            from_json(&list(MAX_STEPS + 1), Context::Input, &All),
            Err(ListError::TooLong)
        );
        let stored = vec!["2:2"; MAX_STEPS + 5].join(",");
        assert_eq!(ProcessList::parse(&stored).steps().len(), MAX_STEPS);
    }

    #[test]
    fn stateful_lists() {
        assert!(has_stateful_steps("2:0.1,process__accumulator:5"));
        assert!(has_stateful_steps("1:5,34:6"));
        assert!(!has_stateful_steps("2:0.1,1:5,process__log_to_feed_join:6"));
        assert!(!has_stateful_steps(""));
    }

    #[test]
    fn stored_form_round_trip() {
        assert_eq!(
            parse_stored("1:5,").len(),
            2,
            "a trailing comma is an empty (unknown) step"
        );
        assert_eq!(
            parse_stored("1:5,").len(),
            2,
            "a trailing comma is an empty (unknown) step"
        );
        let steps = parse_stored("1:5,2:0.1,process__log_to_feed:7,24:,71:30:7");
        assert_eq!(
            steps[0],
            RawStep {
                key: "1".into(),
                args: vec!["5".into()]
            }
        );
        assert_eq!(steps[3].args, vec![String::new()]);
        assert_eq!(steps[4].args, vec!["30".to_string(), "7".to_string()]);
        assert!(parse_stored("").is_empty());
        let json = to_json("1:5,2:0.1");
        assert_eq!(
            json,
            serde_json::json!([{"fn":"process__log_to_feed","args":["5"]},{"fn":"process__scale","args":["0.1"]}])
        );
    }

    #[test]
    fn json_set_form_validates_and_encodes_ids() {
        let ok = r#"[{"fn":"process__scale","args":["0.1"]},{"fn":"process__log_to_feed","args":["5"]},{"fn":"process__allowpositive","args":["0"]},{"fn":"process__power_to_kwh_custom","args":["30","7"]},{"fn":"process__publish_to_mqtt","args":["house/power"]},{"fn":"process__add_input","args":[3]}]"#;
        assert_eq!(
            from_json(ok, Context::Input, &Mine),
            Ok("2:0.1,1:5,24:0,71:30:7,35:house/power,11:3".into())
        );
        let err = |j: &str| {
            from_json(j, Context::Input, &Mine)
                .expect_err("invalid")
                .to_string()
        };
        assert_eq!(
            err(r#"[{"args":["1"]}]"#),
            "Missing process key in process list at index 0"
        );
        assert_eq!(
            err(r#"[{"fn":"process__nosuch","args":[]}]"#),
            "Invalid process process key:process__nosuch"
        );
        assert_eq!(
            err(r#"[{"fn":"process__source_feed_data_time","args":["5"]}]"#),
            "Invalid process process key:process__source_feed_data_time"
        );
        assert_eq!(
            err(r#"[{"fn":"process__scale","args":[]}]"#),
            "Invalid number of arguments for process: "
        );
        assert_eq!(
            err(r#"[{"fn":"process__log_to_feed","args":["6"]}]"#),
            "Invalid feed"
        );
        assert_eq!(
            err(r#"[{"fn":"process__add_input","args":["4"]}]"#),
            "Invalid input"
        );
        assert_eq!(
            err(r#"[{"fn":"process__scale","args":["abc"]}]"#),
            "Value is not numeric"
        );
        assert_eq!(
            err(r#"[{"fn":"process__publish_to_mqtt","args":["a,b"]}]"#),
            "Invalid characters in arg"
        );
        // A separator in an argument of no type would smuggle in a step nothing checked.
        for arg in ["0,1:6", "0:1"] {
            assert_eq!(
                err(&format!(
                    r#"[{{"fn":"process__allowpositive","args":["{arg}"]}}]"#
                )),
                "Invalid characters in arg",
                "{arg}"
            );
        }
        // An object is walked like PHP's array: its key is the index (emoncms's answer).
        assert_eq!(
            err(r#"{"fn":"process__scale"}"#),
            "Missing process key in process list at index fn"
        );
        assert_eq!(err("5"), "Process list must be an array");
        assert_eq!(
            err(r#"[{"fn":"process__scale"}]"#),
            "Invalid or missing args in process list at index 0"
        );
        assert_eq!(
            err(r#"[{"fn":7,"args":[]}]"#),
            "Invalid process process key:7"
        );
        assert_eq!(
            err(r#"[{"fn":"process__histogram","args":["5"]}]"#),
            "Invalid process process key:process__histogram"
        );
        // Bad JSON, and the legacy stored form sent to the JSON setter (capture seq 93, 96).
        assert_eq!(err("["), "Invalid process list format: ");
        assert_eq!(err("1:1"), "Invalid process list format: ");
        // A numeric id is not a key in the set form (capture seq 90).
        assert_eq!(
            err(r#"[{"fn":"1","args":["5"]}]"#),
            "Invalid process process key:1"
        );
        // Virtual-feed lists may use the source-feed processes.
        assert_eq!(
            from_json(
                r#"[{"fn":"process__source_feed_data_time","args":["5"]}]"#,
                Context::VirtualFeed,
                &Mine
            ),
            Ok("53:5".into())
        );
    }
}
