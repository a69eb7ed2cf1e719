//! `billing/*`: a hosted service's balance, statements and administration (issue 18). emoncms
//! has no such API; these are ynni's own, JSON (and CSV for statements).
//!
//! A user (session or apikey) sees their own account, ledger and statements and redeems
//! voucher codes (write access); an administrator (a login session, never an apikey, as for
//! `admin/*`) tops up, refunds, reverses, issues vouchers, sets plans, runs the accrual and
//! exports usage. Without `[billing]` every route answers 404, but `billing/account.json`,
//! which says `{"enabled": false}`.

use axum::http::{HeaderValue, StatusCode, header};
use chrono::NaiveDate;
use serde_json::{Value, json};
use ynni_billing::export::Format as ExportFormat;
use ynni_billing::{Billing, BillingError, statement, utc_day};
use ynni_core::catalog::{LedgerTx, Posted};

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;
use crate::route::Format;

/// Usage exports cover at most this many days per request.
const MAX_EXPORT_DAYS: i64 = 366;

pub async fn handle(call: &Call<'_>) -> ApiResult {
    let Some(billing) = call.state.billing.as_deref() else {
        // The pages ask on every load whether to show billing; a plain answer, not an error.
        if call.route.action == "account" && call.caller.is_some() {
            return Ok(reply::json(json!({ "enabled": false })));
        }
        return Err(ApiError::Text(
            StatusCode::NOT_FOUND,
            "Billing is not enabled on this server".into(),
        ));
    };
    let Some(caller) = call.caller else {
        return Err(ApiError::False);
    };
    let today = utc_day(chrono::Utc::now().timestamp());
    let admin = caller.user.admin && !caller.via_apikey;
    let me = caller.user.id;
    match call.route.action.as_str() {
        "account" => Ok(reply::json(account(billing, me, today).await?)),
        "ledger" => ledger(call, me).await,
        "statement" => {
            let userid = if admin {
                user_param(call).unwrap_or(me)
            } else {
                me
            };
            statement_reply(call, billing, userid, today).await
        }
        "redeem" if caller.write => {
            // Codes are bearer credit: guessing is limited per account and per address.
            let limits = &call.state.settings.limits;
            let window = std::time::Duration::from_secs(limits.login_window_s);
            for key in [
                ynni_core::ratelimit::Key::new("redeem", &[&me.to_le_bytes()]),
                ynni_core::ratelimit::Key::new("redeem-ip", &[call.peer.to_string().as_bytes()]),
            ] {
                if call.state.limiter.hit(key, limits.login_attempts, window) {
                    return Err(ApiError::TooMany {
                        retry_after: limits.login_window_s,
                        message: "Too many voucher attempts; try again later".into(),
                    });
                }
            }
            let code = call.params.get_or_post("code").unwrap_or("").trim();
            let posted = billing.redeem(me, code, today).await.map_err(refused)?;
            Ok(reply::json(posted_json(posted)))
        }
        "redeem" => Err(ApiError::WriteAccessNeeded),
        // A link or image naming an admin write, followed with an administrator's session,
        // reads nothing and changes nothing (the session reads only, see `csrf::scripted`).
        "topup" | "voucher" | "refund" | "reverse" | "setplan" | "accrue"
            if admin && !caller.write =>
        {
            Err(ApiError::WriteAccessNeeded)
        }
        action if admin => admin_action(call, billing, action, today).await,
        "accounts" | "topup" | "voucher" | "refund" | "reverse" | "setplan" | "export"
        | "accrue" | "userledger" => Err(ApiError::Text(
            StatusCode::FORBIDDEN,
            "Admin only: log in as an administrator".into(),
        )),
        _ => Err(ApiError::RouteNotFound { json: true }),
    }
}

async fn admin_action(
    call: &Call<'_>,
    billing: &Billing,
    action: &str,
    today: NaiveDate,
) -> ApiResult {
    let p = call.params;
    let pence = || {
        p.get_or_post("pence")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    let text = |k: &str| p.get_or_post(k).unwrap_or("").trim().to_string();
    let user = || user_param(call).ok_or_else(|| ApiError::fail("userid is required"));
    let posted = match action {
        "accounts" => {
            let accounts = billing.accounts(today).await.map_err(refused)?;
            let mut rows = Vec::with_capacity(accounts.len());
            for a in accounts {
                let name = call
                    .state
                    .catalog
                    .user_by_id(a.userid)
                    .await?
                    .map(|u| u.username)
                    .unwrap_or_default();
                let refusals = billing.refusals(a.userid);
                let mut v = json!(a);
                v["username"] = json!(name);
                v["refusals"] = json!(refusals);
                rows.push(v);
            }
            return Ok(reply::json(Value::Array(rows)));
        }
        "userledger" => {
            let rows = call
                .state
                .catalog
                .ledger_for_user(user()?, "0000-01-01", "9999-12-31")
                .await?;
            return Ok(reply::json(Value::Array(
                rows.iter().map(tx_json).collect(),
            )));
        }
        "topup" => {
            billing
                .top_up(user()?, pence(), &text("reference"), today)
                .await
        }
        "refund" => {
            billing
                .refund(user()?, pence(), &text("reference"), today)
                .await
        }
        "reverse" => billing.reverse(&text("key"), today).await,
        "voucher" => {
            let made = billing
                .create_voucher(&text("code"), pence(), &text("memo"))
                .await
                .map_err(refused)?;
            return Ok(reply::json(
                json!({ "success": made, "code": text("code") }),
            ));
        }
        "setplan" => {
            billing
                .set_plan(user()?, &text("plan"))
                .await
                .map_err(refused)?;
            return Ok(reply::json(json!({ "success": true })));
        }
        "accrue" => {
            let run = billing.accrue(today).await.map_err(refused)?;
            return Ok(reply::json(json!(run)));
        }
        "export" => return export(call, billing, today).await,
        _ => return Err(ApiError::RouteNotFound { json: true }),
    };
    Ok(reply::json(posted_json(posted.map_err(refused)?)))
}

fn user_param(call: &Call<'_>) -> Option<i64> {
    call.params
        .get_or_post("userid")
        .and_then(|v| v.trim().parse().ok())
}

fn posted_json(p: Posted) -> Value {
    match p {
        Posted::New(id) => json!({ "success": true, "id": id, "new": true }),
        Posted::Existing(id) => json!({ "success": true, "id": id, "new": false }),
    }
}

/// A billing refusal as `{"success":false,"message":…}` with its status.
fn refused(e: BillingError) -> ApiError {
    match e {
        BillingError::Catalog(c) => ApiError::Internal(c),
        e => ApiError::Text(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            json!({ "success": false, "message": e.to_string() }).to_string(),
        ),
    }
}

async fn account(billing: &Billing, userid: i64, today: NaiveDate) -> Result<Value, ApiError> {
    let a = billing.account(userid, today).await.map_err(refused)?;
    let policy = billing.policy();
    let mut v = json!(a);
    v["enabled"] = json!(true);
    v["currency"] = json!("GBP");
    v["warn_days"] = json!(policy.warn_days);
    v["grace_days"] = json!(policy.grace_days);
    v["refusals"] = json!(billing.refusals(userid));
    Ok(v)
}

fn tx_json(t: &LedgerTx) -> Value {
    json!({
        "id": t.id, "key": t.key, "kind": t.kind, "date": t.effective_date,
        "memo": t.memo, "feeds": t.quantity,
        // What it did to the balance: a top-up is positive.
        "amount_pence": -t.customer_amount,
    })
}

/// `billing/ledger.json?start=YYYY-MM-DD&end=YYYY-MM-DD`: the caller's transactions.
async fn ledger(call: &Call<'_>, userid: i64) -> ApiResult {
    let from = call.params.get_or_post("start").unwrap_or("0000-01-01");
    let to = call.params.get_or_post("end").unwrap_or("9999-12-31");
    for d in [from, to] {
        if d.parse::<NaiveDate>().is_err() && d != "0000-01-01" && d != "9999-12-31" {
            return Err(refused(BillingError::BadDate(d.to_string())));
        }
    }
    let rows = call.state.catalog.ledger_for_user(userid, from, to).await?;
    Ok(reply::json(Value::Array(
        rows.iter().map(tx_json).collect(),
    )))
}

/// `billing/statement.json?month=YYYY-MM` (or `.csv`).
async fn statement_reply(
    call: &Call<'_>,
    billing: &Billing,
    userid: i64,
    today: NaiveDate,
) -> ApiResult {
    let month = call
        .params
        .get_or_post("month")
        .map_or_else(|| today.format("%Y-%m").to_string(), str::to_string);
    let s = billing
        .statement(userid, &month, today)
        .await
        .map_err(refused)?;
    if call.route.format == Format::Csv {
        let mut r = reply::text(StatusCode::OK, statement::csv(&s));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        let disposition = format!("attachment; filename=\"statement-{}.csv\"", s.month);
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        return Ok(r);
    }
    Ok(reply::json(json!(s)))
}

/// `billing/export.json?format=stripe|lago&start=YYYY-MM-DD&end=YYYY-MM-DD`: the days'
/// charges as usage events.
async fn export(call: &Call<'_>, billing: &Billing, today: NaiveDate) -> ApiResult {
    let p = call.params;
    let format: ExportFormat = p
        .get_or_post("format")
        .unwrap_or("stripe")
        .parse()
        .map_err(ApiError::fail)?;
    let date = |k: &str, default: NaiveDate| -> Result<NaiveDate, ApiError> {
        match p.get_or_post(k) {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| refused(BillingError::BadDate(v.to_string()))),
            None => Ok(default),
        }
    };
    let end = date("end", today)?;
    let start = date("start", end - chrono::Days::new(31))?;
    if (end - start).num_days() > MAX_EXPORT_DAYS || end < start {
        return Err(ApiError::fail(format!(
            "start must be before end, at most {MAX_EXPORT_DAYS} days apart"
        )));
    }
    let events = billing
        .export(start, end, today, format)
        .await
        .map_err(refused)?;
    Ok(reply::json(Value::Array(events)))
}
