//! Billing against the catalog: posting top-ups, vouchers, refunds, reversals and the daily
//! accruals, reading positions and statements, and the set of users whose writes are refused.
//!
//! Every operation is safe to repeat and to run on several nodes at once: each transaction's
//! key is unique in the ledger, so the second post of a key changes nothing. The refused set
//! is a cache: each node rebuilds it from the ledger ([`Billing::refresh`], every few seconds)
//! and updates a user's entry at once after crediting them here.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Datelike, Days, NaiveDate};
use serde::Serialize;
use ynni_core::Catalog;
use ynni_core::catalog::{LedgerTx, NewLedgerTx, PlanHistory, Posted, User};

use crate::accrual::{daily_rate_centipence, day_charge};
use crate::books::{self, ACCRUAL, REVERSAL};
use crate::error::BillingError;
use crate::export::{self, Format};
use crate::limits::Admission;
use crate::plan::{Plan, Policy};
use crate::standing::{Position, position};
use crate::statement::{self, Statement};

/// Days an accrual run looks back for days not yet charged (a node that was down for a few
/// days catches up; longer outages are not charged).
pub const CATCH_UP_DAYS: u64 = 7;

/// Whole days after a month ends before its overage is charged (see `settle_overage`).
pub const SETTLE_DAYS: u64 = 1;

/// The day whose accrual run closes the month before `next` (its following month's first
/// day): the last of the [`SETTLE_DAYS`] after the month. That run settles the month's
/// overage, and once it has finished nothing more is posted into the month.
fn closing_day(next: NaiveDate) -> NaiveDate {
    next.checked_add_days(Days::new(SETTLE_DAYS.saturating_sub(1)))
        .unwrap_or(next)
}

/// The earliest and latest dates the ledger's queries take as "all".
const ALL_FROM: &str = "0000-01-01";
const ALL_TO: &str = "9999-12-31";

/// Writes refused because an account's balance or quota is used up (a metric).
pub const QUOTA_REFUSALS: &str = "ynni_quota_refusals_total";

/// Gives the billing metrics their help text.
pub fn describe_metrics() {
    metrics::describe_counter!(
        QUOTA_REFUSALS,
        "Writes (HTTP posts, MQTT logins) refused because an account's balance or quota is used up"
    );
}

pub struct Billing {
    catalog: Catalog,
    policy: Policy,
    refused: RwLock<HashSet<i64>>,
    /// Writes refused for want of balance, per user, since this process started.
    refusals: Mutex<HashMap<i64, u64>>,
    /// Refusals not yet added to the day's usage.
    unsaved_refusals: Mutex<HashMap<i64, i64>>,
    /// Users placed on a plan other than the default, as last read (the hot path's view).
    user_plans: RwLock<HashMap<i64, String>>,
    limits: crate::limits::RateLimits,
    /// Held by a refund from its balance check to its posting (see [`Billing::refund`]).
    refunds: tokio::sync::Mutex<()>,
    /// Told each user newly refused (the broker closes their connections).
    on_refused: Mutex<Option<Arc<ynni_core::user_queue::UserQueue>>>,
}

/// What the account page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub userid: i64,
    pub plan: String,
    pub feeds: i64,
    pub feed_year_pence: i64,
    pub monthly_fee_pence: i64,
    /// What a day costs now, in hundredths of a penny.
    pub daily_centipence: i64,
    #[serde(flatten)]
    pub position: Position,
}

/// What an accrual run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AccrualRun {
    pub users: u32,
    /// Days charged by this run.
    pub posted: u32,
    /// Days found already charged (by an earlier run or another node).
    pub existing: u32,
    pub pence: i64,
}

/// The UTC day of a unix time.
pub fn utc_day(unix: i64) -> NaiveDate {
    DateTime::from_timestamp(unix, 0).map_or(NaiveDate::MIN, |t| t.date_naive())
}

impl Billing {
    pub fn new(catalog: Catalog, policy: Policy) -> Self {
        Self {
            catalog,
            policy,
            refused: RwLock::new(HashSet::new()),
            refusals: Mutex::new(HashMap::new()),
            unsaved_refusals: Mutex::new(HashMap::new()),
            on_refused: Mutex::new(None),
            user_plans: RwLock::new(HashMap::new()),
            limits: crate::limits::RateLimits::default(),
            refunds: tokio::sync::Mutex::new(()),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether `userid`'s writes are refused now (past the grace period with nothing left).
    pub fn refuses_writes(&self, userid: i64) -> bool {
        self.refused
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&userid)
    }

    /// Sends every user who becomes refused, whichever call found it, to `tx`.
    pub fn notify_refused(&self, tx: Arc<ynni_core::user_queue::UserQueue>) {
        *self.on_refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    fn announce(&self, users: &[i64]) {
        if let Some(tx) = &*self.on_refused.lock().unwrap_or_else(|p| p.into_inner()) {
            for u in users {
                tracing::info!(
                    userid = u,
                    "billing: balance used up and grace over; writes refused"
                );
                tx.push(*u);
            }
        }
    }

    /// The plan `userid` is on, as last read (no catalog query: for every request).
    pub fn plan_now(&self, userid: i64) -> Option<&Plan> {
        let name = self
            .user_plans
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&userid)
            .cloned();
        self.policy.plan(name.as_deref())
    }

    /// Admits `values` values posted by `nodes` of `userid` under their plan's rate limits,
    /// or says how many seconds to wait (counted as a refusal). Should the write then be
    /// refused (a busy shard), [`Billing::give_back`] the admission.
    pub fn admit(&self, userid: i64, nodes: &[&str], values: usize) -> Result<Admission, u64> {
        let Some(plan) = self.plan_now(userid) else {
            return Ok(Admission::default());
        };
        let admitted = self.limits.admit(userid, plan, nodes, values);
        if admitted.is_err() {
            self.count_refusal(userid);
        }
        admitted
    }

    /// Undoes an admission whose write was not stored.
    pub fn give_back(&self, userid: i64, admission: Admission) {
        if let Some(plan) = self.plan_now(userid) {
            self.limits.give_back(plan, admission);
        }
    }

    /// Counts a write refused because `userid` is suspended.
    pub fn count_refusal(&self, userid: i64) {
        metrics::counter!(QUOTA_REFUSALS).increment(1);
        *self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(userid)
            .or_default() += 1;
        *self
            .unsaved_refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(userid)
            .or_default() += 1;
    }

    /// Adds the refusals counted since the last call to `today`'s usage (a crash loses at
    /// most those; none is counted twice).
    pub async fn save_refusals(&self, today: NaiveDate) -> Result<(), BillingError> {
        let pending = std::mem::take(
            &mut *self
                .unsaved_refusals
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let day = today.to_string();
        for (userid, n) in pending {
            self.catalog.add_usage_refusals(userid, &day, n).await?;
        }
        Ok(())
    }

    /// Records what every user has on `today` (feeds, inputs, bytes stored) in their usage.
    pub async fn snapshot_usage(&self, today: NaiveDate) -> Result<(), BillingError> {
        let day = today.to_string();
        for u in self.catalog.list_users().await? {
            let feeds = self.catalog.feeds_for_user(u.id).await?;
            let bytes: i64 = feeds.iter().map(|f| f.size.max(0)).sum();
            let inputs = self.catalog.inputs_for_user(u.id).await?.len() as i64;
            self.catalog
                .set_usage_snapshot(u.id, &day, feeds.len() as i64, inputs, bytes)
                .await?;
        }
        Ok(())
    }

    /// Writes refused for want of balance since this process started.
    pub fn refusals(&self, userid: i64) -> u64 {
        self.refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&userid)
            .copied()
            .unwrap_or(0)
    }

    async fn user(&self, userid: i64) -> Result<User, BillingError> {
        self.catalog
            .user_by_id(userid)
            .await?
            .ok_or(BillingError::UnknownUser)
    }

    pub async fn plan_of(&self, userid: i64) -> Result<Plan, BillingError> {
        let name = self.catalog.billing_plan(userid).await?;
        self.plan_named(name.as_deref())
    }

    /// The policy's plan called `name` (`None`, or a name it no longer has: the default).
    fn plan_named(&self, name: Option<&str>) -> Result<Plan, BillingError> {
        self.policy
            .plan(name)
            .cloned()
            .ok_or_else(|| BillingError::UnknownPlan(self.policy.default_plan.clone()))
    }

    /// The plan of `history` when the day before `until` ended, for charging that day or the
    /// month it ends: a run that charges it later must not use a plan chosen since.
    fn plan_until(&self, history: &PlanHistory, until: NaiveDate) -> Result<Plan, BillingError> {
        let secs = until
            .and_hms_opt(0, 0, 0)
            .map_or(i64::MAX, |t| t.and_utc().timestamp());
        self.plan_named(history.plan_at(secs))
    }

    pub async fn set_plan(&self, userid: i64, plan: &str) -> Result<(), BillingError> {
        if !self.policy.plans.contains_key(plan) {
            return Err(BillingError::UnknownPlan(plan.to_string()));
        }
        self.user(userid).await?;
        self.catalog
            .set_billing_plan(userid, plan, chrono::Utc::now().timestamp())
            .await?;
        self.user_plans
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(userid, plan.to_string());
        Ok(())
    }

    /// Posts `tx` for `userid`; a key already used for another user is refused.
    async fn post_for(&self, userid: i64, tx: &NewLedgerTx) -> Result<Posted, BillingError> {
        let posted = self.catalog.post_ledger(tx).await??;
        if let Posted::Existing(_) = posted {
            let existing = self.catalog.ledger_tx(&tx.key).await?;
            if existing.and_then(|t| t.userid) != Some(userid) {
                return Err(BillingError::KeyUsed(tx.key.clone()));
            }
        }
        Ok(posted)
    }

    /// Credits `pence` received under `reference` (a payment id): once per reference.
    pub async fn top_up(
        &self,
        userid: i64,
        pence: i64,
        reference: &str,
        today: NaiveDate,
    ) -> Result<Posted, BillingError> {
        check_amount(pence)?;
        check_reference(reference)?;
        self.user(userid).await?;
        let posted = self
            .post_for(userid, &books::topup(userid, pence, reference, today))
            .await?;
        self.refresh_user(userid, today).await?;
        Ok(posted)
    }

    /// Records a voucher code worth `pence` (hardware credit, a promotion); false if the code
    /// exists.
    pub async fn create_voucher(
        &self,
        code: &str,
        pence: i64,
        memo: &str,
    ) -> Result<bool, BillingError> {
        check_amount(pence)?;
        check_reference(code)?;
        // A code is a bearer credit: short ones could be guessed.
        if code.len() < 10 {
            return Err(BillingError::VoucherTooShort);
        }
        Ok(self.catalog.create_voucher(code, pence, memo).await?)
    }

    /// Credits the voucher `code` to `userid`: once, to one user.
    pub async fn redeem(
        &self,
        userid: i64,
        code: &str,
        today: NaiveDate,
    ) -> Result<Posted, BillingError> {
        let (pence, memo) = self
            .catalog
            .voucher(code)
            .await?
            .ok_or(BillingError::VoucherNotValid)?;
        self.user(userid).await?;
        let posted = self
            .post_for(userid, &books::voucher(userid, pence, code, &memo, today))
            .await
            .map_err(|e| match e {
                BillingError::KeyUsed(_) => BillingError::VoucherNotValid,
                e => e,
            })?;
        self.refresh_user(userid, today).await?;
        Ok(posted)
    }

    /// Pays `pence` of the balance back under `reference`; no more than the balance.
    pub async fn refund(
        &self,
        userid: i64,
        pence: i64,
        reference: &str,
        today: NaiveDate,
    ) -> Result<Posted, BillingError> {
        check_amount(pence)?;
        check_reference(reference)?;
        let tx = books::refund(userid, pence, reference, today);
        // From the balance check to the posting no other refund of the account may run, or
        // two could each fit the balance and together pass it: one at a time on this node,
        // and under the account's catalog lock across nodes (a check-then-add, like a
        // creation's count-then-insert).
        let _here = self.refunds.lock().await;
        let everywhere = self.catalog.lock_creations(userid).await?;
        if self.catalog.ledger_tx(&tx.key).await?.is_none() {
            let balance = self.position(userid, today).await?.balance_pence;
            let history = self
                .catalog
                .ledger_for_user(userid, ALL_FROM, ALL_TO)
                .await?;
            let refundable = balance.min(books::cash_paid_in(&history)).max(0);
            if pence > refundable {
                everywhere.release().await;
                return Err(BillingError::RefundTooLarge {
                    asked: pence,
                    refundable,
                });
            }
        }
        let posted = self.post_for(userid, &tx).await;
        everywhere.release().await;
        let posted = posted?;
        self.refresh_user(userid, today).await?;
        Ok(posted)
    }

    /// Undoes the transaction with `key` by posting its opposite (once).
    pub async fn reverse(&self, key: &str, today: NaiveDate) -> Result<Posted, BillingError> {
        let original = self
            .catalog
            .ledger_tx(key)
            .await?
            .ok_or_else(|| BillingError::UnknownTransaction(key.to_string()))?;
        if original.kind == REVERSAL {
            return Err(BillingError::NotReversible(key.to_string()));
        }
        let entries = self.catalog.ledger_entries(original.id).await?;
        let posted = self
            .catalog
            .post_ledger(&books::reversal(&original, &entries, today))
            .await??;
        if let Some(u) = original.userid {
            self.refresh_user(u, today).await?;
        }
        Ok(posted)
    }

    /// `userid`'s balance, runway and standing on `today`.
    pub async fn position(&self, userid: i64, today: NaiveDate) -> Result<Position, BillingError> {
        Ok(self.account(userid, today).await?.position)
    }

    pub async fn account(&self, userid: i64, today: NaiveDate) -> Result<Account, BillingError> {
        let user = self.user(userid).await?;
        let plan = self.plan_of(user.id).await?;
        let feeds = self.catalog.feeds_for_user(user.id).await?.len() as i64;
        let history = self
            .catalog
            .ledger_for_user(user.id, ALL_FROM, ALL_TO)
            .await?;
        let daily = daily_rate_centipence(&plan, feeds, today.year());
        Ok(Account {
            userid: user.id,
            plan: plan.name.clone(),
            feeds,
            feed_year_pence: plan.feed_year_pence,
            monthly_fee_pence: plan.monthly_fee_pence,
            daily_centipence: daily,
            position: position(&history, daily, today, &self.policy),
        })
    }

    /// Every user's account (for the administrator).
    pub async fn accounts(&self, today: NaiveDate) -> Result<Vec<Account>, BillingError> {
        let mut out = Vec::new();
        for u in self.catalog.list_users().await? {
            out.push(self.account(u.id, today).await?);
        }
        Ok(out)
    }

    /// Charges every user for each finished day whose run has not finished (up to
    /// [`CATCH_UP_DAYS`] back, not before an account existed), for the most feeds they held at
    /// once that day (the feeds they have now for a day nothing recorded), then records those
    /// days as done.
    pub async fn accrue(&self, today: NaiveDate) -> Result<AccrualRun, BillingError> {
        let mut run = AccrualRun::default();
        let earliest = today
            .checked_sub_days(Days::new(CATCH_UP_DAYS))
            .unwrap_or(today);
        let done = self
            .catalog
            .billing_days_done(&earliest.to_string(), &today.to_string())
            .await?;
        let days: Vec<NaiveDate> = earliest
            .iter_days()
            .take_while(|d| *d < today)
            .filter(|d| !done.contains(&d.to_string()))
            .collect();
        if !days.is_empty() {
            for user in self.catalog.list_users().await? {
                let r = self.accrue_user(&user, &days).await?;
                self.settle_overage(&user, &days).await?;
                run.users += 1;
                run.posted += r.posted;
                run.existing += r.existing;
                run.pence += r.pence;
            }
            for d in &days {
                self.catalog.mark_billing_day(&d.to_string()).await?;
            }
        }
        self.refresh(today).await?;
        Ok(run)
    }

    /// Charges `user` for `days` (in order) not already charged.
    async fn accrue_user(
        &self,
        user: &User,
        days: &[NaiveDate],
    ) -> Result<AccrualRun, BillingError> {
        let mut run = AccrualRun::default();
        let created = utc_day(user.created);
        let days: Vec<NaiveDate> = days.iter().copied().filter(|d| *d >= created).collect();
        let (Some(first), Some(last)) = (days.first(), days.last()) else {
            return Ok(run);
        };
        let plans = self.catalog.billing_plan_history(user.id).await?;
        // Each day is charged for the most feeds held at once that day, as recorded then; a
        // day with no record (the service was not running) for the feeds there are now.
        let feeds_now = self.catalog.feeds_for_user(user.id).await?.len() as i64;
        let until_day = last.succ_opt().unwrap_or(*last);
        let held: std::collections::HashMap<String, i64> = self
            .catalog
            .feeds_held(user.id, &first.to_string(), &until_day.to_string())
            .await?
            .into_iter()
            .collect();
        let year_start = NaiveDate::from_ymd_opt(first.year(), 1, 1).unwrap_or(*first);
        let until = last.succ_opt().unwrap_or(*last);
        let mut history: Vec<LedgerTx> = self
            .catalog
            .ledger_for_user(user.id, &year_start.to_string(), &until.to_string())
            .await?
            .into_iter()
            .filter(|t| t.kind == ACCRUAL)
            .collect();
        for day in days {
            let date = day.to_string();
            let feeds = held.get(&date).copied().unwrap_or(feeds_now);
            if history.iter().any(|t| t.effective_date == date) {
                run.existing += 1;
                continue;
            }
            let year_from = format!("{}-01-01", day.year());
            let units_before: i64 = history
                .iter()
                .filter(|t| t.effective_date >= year_from && t.effective_date < date)
                .map(|t| t.quantity.saturating_mul(t.rate))
                .sum();
            // The plan the day ended on (a run catching up must not use a later one).
            let plan = self.plan_until(&plans, day.succ_opt().unwrap_or(day))?;
            let (pence, _) = day_charge(&plan, day, units_before, feeds);
            // A day with nothing to charge and nothing to count leaves no row.
            if feeds == 0 && pence == 0 {
                continue;
            }
            let fee = if day.day() == 1 {
                plan.monthly_fee_pence
            } else {
                0
            };
            let tx = books::accrual(user.id, day, pence, feeds, plan.feed_year_pence, fee);
            match self.catalog.post_ledger(&tx).await?? {
                Posted::New(id) => {
                    run.posted += 1;
                    run.pence += pence;
                    history.push(LedgerTx {
                        id,
                        key: tx.key,
                        kind: tx.kind,
                        userid: tx.userid,
                        effective_date: date,
                        created: 0,
                        memo: tx.memo,
                        quantity: tx.quantity,
                        rate: tx.rate,
                        customer_amount: pence,
                    });
                }
                // Another node charged it first: its row counts from now on.
                Posted::Existing(_) => {
                    run.existing += 1;
                    if let Some(t) = self.catalog.ledger_tx(&tx.key).await? {
                        history.push(t);
                    }
                }
            }
        }
        Ok(run)
    }

    /// Charges `user` the overage of each month whose closing day ([`closing_day`]) is among
    /// `days`, the days this run charges: [`SETTLE_DAYS`] whole days after the month's last,
    /// so the values of that day, which shards count and save a little after they arrive, are
    /// all in. In that run only, so that once the closing day is done the month is final (its
    /// statement is numbered then; a later run must not add to it, even if late counts would
    /// now give an overage where there was none).
    async fn settle_overage(&self, user: &User, days: &[NaiveDate]) -> Result<(), BillingError> {
        let created = utc_day(user.created);
        let mut history = None;
        for &day in days {
            let Some(next) = day
                .checked_sub_days(Days::new(SETTLE_DAYS.saturating_sub(1)))
                .filter(|next| next.day() == 1)
            else {
                continue;
            };
            let Some(last_day) = next.pred_opt().filter(|d| *d >= created) else {
                continue;
            };
            let month = last_day.format("%Y-%m").to_string();
            let key = books::overage_key(user.id, &month);
            if self.catalog.ledger_tx(&key).await?.is_some() {
                continue;
            }
            // Priced with the plan the month ended on, not one chosen since.
            if history.is_none() {
                history = Some(self.catalog.billing_plan_history(user.id).await?);
            }
            if let Some(plans) = &history {
                let plan = self.plan_until(plans, next)?;
                self.charge_overage(user.id, &plan, last_day).await?;
            }
        }
        Ok(())
    }

    /// Charges what the month ending on `last_day` used past `plan`'s allowances, once.
    async fn charge_overage(
        &self,
        userid: i64,
        plan: &Plan,
        last_day: NaiveDate,
    ) -> Result<(), BillingError> {
        let o = &plan.overage;
        if o.pence_per_1000_values == 0 && o.pence_per_gb_month == 0 {
            return Ok(());
        }
        let first =
            NaiveDate::from_ymd_opt(last_day.year(), last_day.month(), 1).unwrap_or(last_day);
        let next = last_day.succ_opt().unwrap_or(last_day);
        let days = self
            .catalog
            .usage_for_user(userid, &first.to_string(), &next.to_string())
            .await?;
        let values: i64 = days.iter().map(|d| d.http_values + d.mqtt_values).sum();
        // Byte-days over the month's days: a day with nothing recorded (before the account
        // existed, or the service not running) counts as nothing stored.
        let month_days = (next - first).num_days().max(1);
        let avg_bytes = days.iter().map(|d| d.bytes.max(0)).sum::<i64>() / month_days;
        let (values_pence, storage_pence) = crate::overage::month_charges(o, values, avg_bytes);
        if values_pence + storage_pence == 0 {
            return Ok(());
        }
        let month = first.format("%Y-%m").to_string();
        let memo = format!(
            "{month}: {values} values received ({values_pence}p past the allowance), {} MB stored on average ({storage_pence}p past the allowance)",
            avg_bytes / 1_000_000
        );
        let tx = books::overage(userid, &month, last_day, values_pence + storage_pence, memo);
        self.catalog.post_ledger(&tx).await??;
        Ok(())
    }

    /// Rebuilds the set of users whose writes are refused (and re-reads who is on which plan);
    /// returns the users newly in it
    /// (also queued on [`Billing::notify_refused`]'s queue).
    pub async fn refresh(&self, today: NaiveDate) -> Result<Vec<i64>, BillingError> {
        let plans: HashMap<i64, String> = self.catalog.billing_plans().await?.into_iter().collect();
        *self.user_plans.write().unwrap_or_else(|p| p.into_inner()) = plans;
        let mut refused = HashSet::new();
        // Only a user not in credit can be refused: their customer account's total (debits
        // minus credits) is zero or more.
        for (userid, total) in self.catalog.customer_totals().await? {
            if total >= 0
                && self
                    .position(userid, today)
                    .await?
                    .standing
                    .refuses_writes()
            {
                refused.insert(userid);
            }
        }
        let new = {
            let mut set = self.refused.write().unwrap_or_else(|p| p.into_inner());
            let mut new: Vec<i64> = refused.difference(&set).copied().collect();
            new.sort_unstable();
            *set = refused;
            new
        };
        self.announce(&new);
        Ok(new)
    }

    async fn refresh_user(&self, userid: i64, today: NaiveDate) -> Result<(), BillingError> {
        let refuses = self
            .position(userid, today)
            .await?
            .standing
            .refuses_writes();
        let newly = {
            let mut set = self.refused.write().unwrap_or_else(|p| p.into_inner());
            if refuses {
                set.insert(userid)
            } else {
                set.remove(&userid);
                false
            }
        };
        // Whichever call finds the account newly refused says so, and its open MQTT
        // connections close (the next `refresh` finds it refused already and would not).
        if newly {
            self.announce(&[userid]);
        }
        Ok(())
    }

    /// `userid`'s statement for `month` (`YYYY-MM`); numbered once the month is over and
    /// settled ([`SETTLE_DAYS`]).
    pub async fn statement(
        &self,
        userid: i64,
        month: &str,
        today: NaiveDate,
    ) -> Result<Statement, BillingError> {
        let (first, next) = statement::month_bounds(month)?;
        let user = self.user(userid).await?;
        let before = self
            .catalog
            .ledger_for_user(userid, ALL_FROM, &first.to_string())
            .await?;
        let during = self
            .catalog
            .ledger_for_user(userid, &first.to_string(), &next.to_string())
            .await?;
        // A month is numbered once it is closed (nothing can be added to it after), if the
        // account had anything on its books by its end: asking for the empty months of
        // centuries past numbers none of them.
        let number =
            if !(before.is_empty() && during.is_empty()) && self.month_closed(next, today).await? {
                Some(self.catalog.statement_number(userid, month).await?)
            } else {
                None
            };
        Ok(statement::build(
            userid,
            &user.username,
            month,
            number,
            &before,
            &during,
        ))
    }

    /// Whether the month before `next` (its following month's first day) is closed by
    /// `today`: the accrual run that charges its closing day ([`closing_day`]) has finished,
    /// which charged every day of the month any run still could and settled its overage; or
    /// the closing day is past every run's catch-up window, so no run will charge it.
    async fn month_closed(&self, next: NaiveDate, today: NaiveDate) -> Result<bool, BillingError> {
        let closing = closing_day(next);
        if closing >= today {
            return Ok(false);
        }
        if closing
            .checked_add_days(Days::new(CATCH_UP_DAYS))
            .is_none_or(|d| d < today)
        {
            return Ok(true);
        }
        let after = closing.succ_opt().unwrap_or(closing);
        let done = self
            .catalog
            .billing_days_done(&closing.to_string(), &after.to_string())
            .await?;
        Ok(!done.is_empty())
    }

    /// The charges of days `from <= day < to` that stand (not reversed), and the usage of
    /// those days that are over by `today`, as usage events.
    pub async fn export(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        today: NaiveDate,
        format: Format,
    ) -> Result<Vec<serde_json::Value>, BillingError> {
        let (from_s, to_s) = (from.to_string(), to.to_string());
        // A reversal is dated when it was made, on or after the day it reverses.
        let since = self.catalog.ledger_between(&from_s, ALL_TO).await?;
        let reversed: std::collections::HashSet<String> = since
            .iter()
            .filter(|t| t.kind == REVERSAL)
            .filter_map(|t| t.key.strip_prefix("reverse:").map(str::to_string))
            .collect();
        let txs: Vec<_> = since
            .into_iter()
            .filter(|t| t.effective_date < to_s)
            .collect();
        // A day's counts are final only once it is settled: the shards write theirs every few
        // seconds, and a meter that keeps the first value sent for a day (Stripe's identifier)
        // would keep yesterday's as it stood just after midnight.
        let settled = today
            .checked_sub_days(Days::new(SETTLE_DAYS))
            .unwrap_or(today);
        let finished = to.min(settled).to_string();
        let usage = self.catalog.usage_between(&from_s, &finished).await?;
        Ok(export::events(&txs, &reversed, &usage, format))
    }

    /// Every account's total, which together must be zero (the books balance).
    pub async fn trial_balance(&self) -> Result<Vec<(String, Option<i64>, i64)>, BillingError> {
        Ok(self.catalog.ledger_account_totals().await?)
    }
}

fn check_amount(pence: i64) -> Result<(), BillingError> {
    if pence > 0 && pence <= 100_000_000 {
        Ok(())
    } else {
        Err(BillingError::BadAmount)
    }
}

/// References and codes become part of a key: printable, no separators that would make two
/// keys look alike, bounded.
fn check_reference(r: &str) -> Result<(), BillingError> {
    let ok = !r.is_empty()
        && r.len() <= 100
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(BillingError::BadReference)
    }
}
