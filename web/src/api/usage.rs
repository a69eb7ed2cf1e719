//! `usage/summary.json|csv?start=YYYY-MM-DD&end=YYYY-MM-DD`: what an account used per UTC day
//! (values received over HTTP and MQTT, points written, feeds, inputs and bytes stored,
//! writes refused for want of balance) and its totals; an administrator (login session) adds
//! `all=1` for every account, with per-account and overall totals. `end` is the day after the
//! last; at most [`MAX_DAYS`] days per request.

use axum::http::{HeaderValue, StatusCode, header};
use chrono::{Days, NaiveDate};
use serde_json::{Value, json};
use ynni_core::catalog::UsageDay;

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;
use crate::route::Format;

const MAX_DAYS: i64 = 366;

const FIELDS: [&str; 7] = [
    "http_values",
    "mqtt_values",
    "points",
    "feeds",
    "inputs",
    "bytes",
    "refusals",
];

fn counts(u: &UsageDay) -> [i64; 7] {
    [
        u.http_values,
        u.mqtt_values,
        u.points,
        u.feeds,
        u.inputs,
        u.bytes,
        u.refusals,
    ]
}

fn row_json(u: &UsageDay) -> Value {
    let mut v = json!({ "userid": u.userid, "day": u.day });
    for (k, n) in FIELDS.iter().zip(counts(u)) {
        v[*k] = json!(n);
    }
    v
}

/// Sums of what flows (values, points, refusals); what exists (feeds, inputs, bytes) is the
/// latest day's.
fn totals(rows: &[&UsageDay]) -> Value {
    let mut t = json!({});
    for (i, k) in FIELDS.iter().enumerate() {
        let n: i64 = match *k {
            "feeds" | "inputs" | "bytes" => rows.last().map_or(0, |u| counts(u)[i]),
            _ => rows.iter().map(|u| counts(u)[i]).sum(),
        };
        t[*k] = json!(n);
    }
    t
}

pub async fn handle(call: &Call<'_>) -> ApiResult {
    let Some(caller) = call.caller else {
        return Err(ApiError::False);
    };
    if call.route.action != "summary" {
        return Err(ApiError::RouteNotFound { json: true });
    }
    let p = call.params;
    let today = chrono::Utc::now().date_naive();
    let date = |k: &str, default: NaiveDate| -> Result<NaiveDate, ApiError> {
        match p.get(k) {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| ApiError::fail(format!("{k} must be a date, YYYY-MM-DD"))),
            None => Ok(default),
        }
    };
    let end = date("end", today.checked_add_days(Days::new(1)).unwrap_or(today))?;
    let start = date("start", end.checked_sub_days(Days::new(31)).unwrap_or(end))?;
    if end < start || (end - start).num_days() > MAX_DAYS {
        return Err(ApiError::fail(format!(
            "start must be before end, at most {MAX_DAYS} days apart"
        )));
    }
    let all = p.get("all").is_some_and(|v| v == "1");
    let rows = if all {
        if !caller.user.admin || caller.via_apikey {
            return Err(ApiError::Text(
                StatusCode::FORBIDDEN,
                "Admin only: log in as an administrator".into(),
            ));
        }
        call.state
            .catalog
            .usage_between(&start.to_string(), &end.to_string())
            .await?
    } else {
        call.state
            .catalog
            .usage_for_user(caller.user.id, &start.to_string(), &end.to_string())
            .await?
    };
    let mut by_user: std::collections::BTreeMap<i64, Vec<&UsageDay>> = Default::default();
    for u in &rows {
        by_user.entry(u.userid).or_default().push(u);
    }
    let users: Vec<(i64, Value)> = by_user
        .iter()
        .map(|(id, days)| (*id, totals(days)))
        .collect();
    let mut overall = json!({});
    for k in FIELDS {
        let sum: i64 = users.iter().map(|(_, t)| t[k].as_i64().unwrap_or(0)).sum();
        overall[k] = json!(sum);
    }
    if call.route.format == Format::Csv {
        let line = |t: &Value| {
            FIELDS
                .iter()
                .map(|k| t[*k].as_i64().unwrap_or(0).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut out = format!("userid,day,{}\n", FIELDS.join(","));
        for u in &rows {
            let n = counts(u).map(|n| n.to_string()).join(",");
            out.push_str(&format!("{},{},{n}\n", u.userid, u.day));
        }
        // An administrator's export of every account ends with each account's totals and
        // the overall ones (`day` reads `total`; `userid` reads `all` for the overall line).
        if all {
            for (id, t) in &users {
                out.push_str(&format!("{id},total,{}\n", line(t)));
            }
            out.push_str(&format!("all,total,{}\n", line(&overall)));
        }
        let mut r = reply::text(StatusCode::OK, out);
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(r);
    }
    let body = json!({
        "start": start.to_string(),
        "end": end.to_string(),
        "days": rows.iter().map(row_json).collect::<Vec<_>>(),
        "users": users
            .iter()
            .map(|(id, t)| json!({ "userid": id, "totals": t }))
            .collect::<Vec<_>>(),
        "totals": overall,
    });
    Ok(reply::json(body))
}
