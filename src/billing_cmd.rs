//! `ynni billing …`: a hosted service's billing from the command line, on the same catalog as
//! the server (SQLite in the data directory, or the cluster's PostgreSQL), and the `[billing]`
//! settings turned into the billing crate's policy.

use anyhow::{Context, bail};
use serde_json::json;
use ynni_billing::export::Format;
use ynni_billing::{Billing, Plan, Policy, statement, utc_day};
use ynni_config::{BillingSettings, Settings};
use ynni_core::Catalog;
use ynni_core::catalog::Posted;

use crate::cli::{BillingCommand, ConfigArgs};

/// The billing policy the `[billing]` section describes.
pub fn policy(b: &BillingSettings) -> Policy {
    Policy {
        plans: b
            .plans
            .iter()
            .map(|(name, p)| {
                let plan = Plan {
                    name: name.clone(),
                    feed_year_pence: p.feed_year_pence,
                    monthly_fee_pence: p.monthly_fee_pence,
                    max_feeds: p.max_feeds,
                    max_inputs: p.max_inputs,
                    values_per_minute: p.values_per_minute,
                    min_post_interval_s: p.min_post_interval_s,
                    overage: ynni_billing::overage::Overage {
                        included_values_per_month: p.included_values_per_month,
                        pence_per_1000_values: p.pence_per_1000_values,
                        included_bytes: p.included_storage_mb.saturating_mul(1_000_000),
                        pence_per_gb_month: p.pence_per_gb_month,
                    },
                };
                (name.clone(), plan)
            })
            .collect(),
        default_plan: b.default_plan.clone(),
        warn_days: b.warn_days,
        grace_days: b.grace_days,
    }
}

pub fn config_of(cmd: &BillingCommand) -> &ConfigArgs {
    match cmd {
        BillingCommand::Accounts(c) | BillingCommand::Accrue(c) => c,
        BillingCommand::Topup(a) | BillingCommand::Refund(a) => &a.config,
        BillingCommand::Voucher(a) => &a.config,
        BillingCommand::Redeem(a) => &a.config,
        BillingCommand::Reverse(a) => &a.config,
        BillingCommand::Plan(a) => &a.config,
        BillingCommand::Statement(a) => &a.config,
        BillingCommand::Ledger(a) => &a.config,
        BillingCommand::Export(a) => &a.config,
    }
}

/// A user named by username, numeric id, or `#<id>` (an id only). Usernames may be all
/// digits: one that names one account as a username and another as an id is refused, or a
/// payment meant for user 1234 could be credited to whoever registered the name "1234".
async fn user_id(catalog: &Catalog, user: &str) -> anyhow::Result<i64> {
    if let Some(id) = user.strip_prefix('#') {
        let id: i64 = id
            .parse()
            .map_err(|_| anyhow::anyhow!("{user:?} is not #<user id>"))?;
        return match catalog.user_by_id(id).await? {
            Some(_) => Ok(id),
            None => bail!("no user with id {id}"),
        };
    }
    let by_name = catalog.user_by_username(user).await?.map(|u| u.id);
    let by_id = match user.parse::<i64>() {
        Ok(id) => catalog.user_by_id(id).await?.map(|_| id),
        Err(_) => None,
    };
    match (by_name, by_id) {
        (Some(a), Some(b)) if a != b => bail!(
            "{user:?} is the username of user {a} and the id of user {b}: name the account as #{a} or #{b}"
        ),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => bail!("no user {user:?}"),
    }
}

fn print_posted(what: &str, p: Posted) {
    match p {
        Posted::New(id) => println!("{what}: transaction {id}"),
        Posted::Existing(id) => {
            println!("{what}: already recorded as transaction {id}; nothing changed")
        }
    }
}

pub async fn run(settings: &Settings, cmd: BillingCommand) -> anyhow::Result<()> {
    let Some(b) = &settings.billing else {
        bail!("billing is not enabled: add a [billing] section to the configuration");
    };
    let catalog = crate::user_cmd::open_catalog(settings).await?;
    let billing = Billing::new(catalog.clone(), policy(b));
    let today = utc_day(chrono::Utc::now().timestamp());
    match cmd {
        BillingCommand::Accounts(_) => {
            for a in billing.accounts(today).await? {
                let name = catalog
                    .user_by_id(a.userid)
                    .await?
                    .map(|u| u.username)
                    .unwrap_or_default();
                println!(
                    "{}",
                    json!({"userid": a.userid, "username": name, "plan": a.plan, "feeds": a.feeds,
                           "balance": statement::pounds(a.position.balance_pence),
                           "runway_days": a.position.runway_days, "standing": a.position.standing})
                );
            }
        }
        BillingCommand::Topup(a) => {
            let u = user_id(&catalog, &a.user).await?;
            print_posted(
                "top-up",
                billing.top_up(u, a.pence, &a.reference, today).await?,
            );
        }
        BillingCommand::Refund(a) => {
            let u = user_id(&catalog, &a.user).await?;
            print_posted(
                "refund",
                billing.refund(u, a.pence, &a.reference, today).await?,
            );
        }
        BillingCommand::Voucher(a) => {
            if !billing.create_voucher(&a.code, a.pence, &a.memo).await? {
                bail!("voucher code {} exists", a.code);
            }
            println!("voucher {} worth {}", a.code, statement::pounds(a.pence));
        }
        BillingCommand::Redeem(a) => {
            let u = user_id(&catalog, &a.user).await?;
            print_posted("voucher", billing.redeem(u, &a.code, today).await?);
        }
        BillingCommand::Reverse(a) => {
            print_posted("reversal", billing.reverse(&a.key, today).await?)
        }
        BillingCommand::Plan(a) => {
            let u = user_id(&catalog, &a.user).await?;
            billing.set_plan(u, &a.plan).await?;
            println!("user {} is on plan {}", a.user, a.plan);
        }
        BillingCommand::Accrue(_) => {
            let run = billing.accrue(today).await?;
            println!("{}", json!(run));
        }
        BillingCommand::Statement(a) => {
            let u = user_id(&catalog, &a.user).await?;
            let s = billing.statement(u, &a.month, today).await?;
            if a.csv {
                print!("{}", statement::csv(&s));
            } else {
                println!("{}", serde_json::to_string_pretty(&s)?);
            }
        }
        BillingCommand::Ledger(a) => {
            let rows = match &a.user {
                Some(user) => {
                    let u = user_id(&catalog, user).await?;
                    catalog
                        .ledger_for_user(u, "0000-01-01", "9999-12-31")
                        .await?
                }
                None => catalog.ledger_between("0000-01-01", "9999-12-31").await?,
            };
            for t in rows {
                let entries = catalog.ledger_entries(t.id).await?;
                let entries: Vec<_> = entries
                    .iter()
                    .map(|e| json!({"account": e.account, "userid": e.userid, "pence": e.amount}))
                    .collect();
                println!(
                    "{}",
                    json!({"id": t.id, "key": t.key, "kind": t.kind, "userid": t.userid,
                           "date": t.effective_date, "memo": t.memo, "entries": entries})
                );
            }
        }
        BillingCommand::Export(a) => {
            let format: Format = a.format.parse().map_err(anyhow::Error::msg)?;
            let day = |s: &str| {
                s.parse()
                    .with_context(|| format!("bad date {s:?} (YYYY-MM-DD)"))
            };
            let (start, end) = (day(&a.start)?, day(&a.end)?);
            for e in billing.export(start, end, today, format).await? {
                println!("{e}");
            }
        }
    }
    Ok(())
}
