//! Billing against a real catalog (SQLite): top-ups, vouchers, refunds, reversals, daily
//! accruals run twice and by two services at once, grace and suspension, statements that
//! match the ledger, and books that always balance.

// Tests stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

#[path = "../../cluster/tests/postgres/mod.rs"]
mod postgres;

use chrono::{Datelike, Days, NaiveDate};
use proptest::prelude::*;
use ynni_billing::{Billing, BillingError, Plan, Policy, Standing, utc_day};
use ynni_core::Catalog;
use ynni_core::catalog::{LedgerTx, NewUser, Posted};

fn policy() -> Policy {
    let standard = Plan {
        name: "standard".into(),
        feed_year_pence: 100,
        monthly_fee_pence: 0,
        max_feeds: 0,
        max_inputs: 0,
        values_per_minute: 0,
        min_post_interval_s: 0,
        overage: Default::default(),
    };
    Policy {
        plans: BTreeMap::from([("standard".to_string(), standard)]),
        default_plan: "standard".into(),
        warn_days: 30,
        grace_days: 7,
    }
}

async fn catalog(dir: &std::path::Path) -> Catalog {
    Catalog::open_sqlite(&dir.join("catalog.sqlite"))
        .await
        .unwrap()
}

async fn user(cat: &Catalog, name: &str) -> i64 {
    let u = NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        password_hash: "$x".into(),
        timezone: "UTC".into(),
        admin: false,
    };
    cat.create_user(&u, false).await.unwrap().unwrap().id
}

fn today() -> NaiveDate {
    utc_day(chrono::Utc::now().timestamp())
}

/// The first of January after today: a month wholly ahead, for runs dated in it.
fn next_january() -> NaiveDate {
    NaiveDate::from_ymd_opt(today().year_ce().1 as i32 + 1, 1, 1).unwrap()
}

/// The overage charged to `userid` for the month starting `first`.
async fn overage_of(cat: &Catalog, userid: i64, first: NaiveDate) -> LedgerTx {
    let month = first.format("%Y-%m").to_string();
    cat.ledger_tx(&format!("overage:{userid}:{month}"))
        .await
        .unwrap()
        .expect("charged")
}

fn plus(d: NaiveDate, n: u64) -> NaiveDate {
    d.checked_add_days(Days::new(n)).unwrap()
}

/// The books balance: every account's total sums to zero.
async fn assert_balanced(b: &Billing) {
    let totals = b.trial_balance().await.unwrap();
    assert_eq!(totals.iter().map(|t| t.2).sum::<i64>(), 0, "{totals:?}");
}

#[tokio::test]
async fn a_user_runs_out_is_suspended_tops_up_and_the_statements_match_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path()).await;
    let alice = user(&cat, "alice").await;
    let bob = user(&cat, "bobby").await;
    for name in ["a", "b", "c"] {
        cat.create_feed(alice, name, "", 5, "").await.unwrap();
    }
    let billing = Billing::new(cat.clone(), policy());
    let start = today();
    billing.top_up(alice, 5, "pay-1", start).await.unwrap();
    // The same payment reported twice counts once; another account cannot claim it.
    assert!(matches!(
        billing.top_up(alice, 5, "pay-1", start).await.unwrap(),
        Posted::Existing(_)
    ));
    assert!(matches!(
        billing.top_up(bob, 5, "pay-1", start).await,
        Err(BillingError::KeyUsed(_))
    ));
    let account = billing.account(alice, start).await.unwrap();
    assert_eq!(account.position.balance_pence, 5);
    // 3 feeds at 100p a year: 0.82p a day, 6 days of runway.
    assert_eq!(account.daily_centipence, 82);
    assert_eq!(account.position.standing, Standing::Low { runway_days: 6 });

    // Ten days on, the seven days before are charged: 2,100 feed-pence / 365 = 5p; twice,
    // and by two services at once, charges once.
    let day10 = plus(start, 10);
    let other = Billing::new(cat.clone(), policy());
    let (r1, r2) = tokio::join!(billing.accrue(day10), other.accrue(day10));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.posted + r2.posted, 7, "{r1:?} {r2:?}");
    assert_eq!(r1.pence + r2.pence, 5);
    let again = billing.accrue(day10).await.unwrap();
    assert_eq!((again.posted, again.pence), (0, 0));
    let pos = billing.position(alice, day10).await.unwrap();
    assert_eq!(pos.balance_pence, 0);
    let Standing::Grace { since, until } = pos.standing else {
        panic!("{pos:?}")
    };
    assert_eq!(until, plus(since, 7));
    assert!(!billing.refuses_writes(alice), "grace keeps writes working");

    // Past the grace period: refused; bob (never charged) is not.
    let later = plus(until, 1);
    billing.accrue(later).await.unwrap();
    assert!(
        billing
            .position(alice, later)
            .await
            .unwrap()
            .standing
            .refuses_writes()
    );
    assert!(billing.refuses_writes(alice));
    assert!(!billing.refuses_writes(bob));
    // A voucher (hardware credit) brings alice back at once; once only, one user only.
    assert!(
        billing
            .create_voucher("HW-0000042", 1500, "emonPi")
            .await
            .unwrap()
    );
    billing.redeem(alice, "HW-0000042", later).await.unwrap();
    assert!(!billing.refuses_writes(alice));
    assert!(matches!(
        billing.redeem(alice, "HW-0000042", later).await.unwrap(),
        Posted::Existing(_)
    ));
    assert!(matches!(
        billing.redeem(bob, "HW-0000042", later).await,
        Err(BillingError::VoucherNotValid)
    ));
    assert!(matches!(
        billing.redeem(bob, "NOPE-NOPE-NOPE", later).await,
        Err(BillingError::VoucherNotValid)
    ));
    // Refunds pay back cash, never voucher credit: of the 1,500p voucher and 5p + 200p of
    // top-ups, at most 205p.
    let balance = billing.position(alice, later).await.unwrap().balance_pence;
    assert!(balance > 205, "{balance}");
    assert!(matches!(
        billing.refund(alice, 6, "r-1", later).await,
        Err(BillingError::RefundTooLarge { refundable: 5, .. })
    ));
    billing.top_up(alice, 200, "pay-3", later).await.unwrap();
    let balance = billing.position(alice, later).await.unwrap().balance_pence;
    assert!(matches!(
        billing.refund(alice, 206, "r-1", later).await,
        Err(BillingError::RefundTooLarge {
            refundable: 205,
            ..
        })
    ));
    billing.refund(alice, 100, "r-1", later).await.unwrap();
    // A reversal undoes a transaction once.
    billing.top_up(alice, 700, "pay-2", later).await.unwrap();
    billing.reverse("topup:pay-2", later).await.unwrap();
    assert!(matches!(
        billing.reverse("topup:pay-2", later).await.unwrap(),
        Posted::Existing(_)
    ));
    let end = billing.position(alice, later).await.unwrap().balance_pence;
    assert_eq!(end, balance - 100);
    assert_balanced(&billing).await;

    // The statements of every month touched chain up, and end at the balance.
    let mut month = start.format("%Y-%m").to_string();
    let last = later.format("%Y-%m").to_string();
    let mut opening = 0;
    loop {
        let s = billing.statement(alice, &month, later).await.unwrap();
        assert_eq!(s.opening_pence, opening, "{month}");
        assert_eq!(
            s.closing_pence,
            s.opening_pence - s.charges_pence + s.credits_pence
        );
        opening = s.closing_pence;
        if month == last {
            assert_eq!(s.number, None, "the current month is a draft");
            break;
        }
        let (_, next) = ynni_billing::statement::month_bounds(&month).unwrap();
        // Numbered once closed, the run that charges the day after it finished (or that day
        // past every run's reach): nothing is added to a numbered statement.
        let closed = next < later
            && (!cat
                .billing_days_done(&next.to_string(), &plus(next, 1).to_string())
                .await
                .unwrap()
                .is_empty()
                || plus(next, ynni_billing::CATCH_UP_DAYS) < later);
        assert_eq!(s.number.is_some(), closed, "{month}");
        month = next.format("%Y-%m").to_string();
    }
    assert_eq!(opening, end);
    // The last month: not numbered the day after it ends, nor when its overage could be
    // settled but the run that does it has not finished; numbered once it has.
    let (_, next) = ynni_billing::statement::month_bounds(&last).unwrap();
    let s = billing.statement(alice, &last, next).await.unwrap();
    assert_eq!(s.number, None, "numbered before it was settled");
    let settled = plus(next, ynni_billing::SETTLE_DAYS);
    let s = billing.statement(alice, &last, settled).await.unwrap();
    assert_eq!(s.number, None, "numbered before its closing run");
    billing.accrue(settled).await.unwrap();
    let s = billing.statement(alice, &last, settled).await.unwrap();
    assert!(s.number.is_some(), "{last}");
    // Months before the account had anything on its books are empty and never numbered, so
    // asking for all of them numbers none.
    for year in [1, 1999] {
        let s = billing
            .statement(alice, &format!("{year:04}-06"), later)
            .await
            .unwrap();
        assert_eq!((s.number, s.closing_pence), (None, 0), "{year}");
    }
}

#[derive(Debug, Clone)]
enum Op {
    TopUp(u8, i64),
    Voucher(u8),
    AddFeed,
    DeleteFeed,
    Accrue(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, 1i64..500).prop_map(|(r, p)| Op::TopUp(r, p)),
        (0u8..3).prop_map(Op::Voucher),
        Just(Op::AddFeed),
        Just(Op::DeleteFeed),
        (0u8..40).prop_map(Op::Accrue),
    ]
}

/// Runs `ops` for one user; every operation is one a client or a timer may repeat.
async fn run(b: &Billing, cat: &Catalog, userid: i64, ops: &[Op], start: NaiveDate) {
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::TopUp(r, p) => {
                b.top_up(userid, *p, &format!("pay-{r}"), start)
                    .await
                    .unwrap();
            }
            Op::Voucher(c) => {
                let code = format!("VOUCHER-{c}-CODE");
                let _ = b.create_voucher(&code, 250, "").await.unwrap();
                b.redeem(userid, &code, start).await.unwrap();
            }
            Op::AddFeed => {
                cat.create_feed(userid, &format!("f{i}"), "", 5, "")
                    .await
                    .unwrap();
            }
            Op::DeleteFeed => {
                if let Some(f) = cat.feeds_for_user(userid).await.unwrap().first() {
                    cat.delete_feed_row(f.id).await.unwrap();
                }
            }
            Op::Accrue(d) => {
                b.accrue(plus(start, u64::from(*d))).await.unwrap();
            }
        }
    }
}

async fn ledger(cat: &Catalog, userid: i64) -> Vec<(String, i64)> {
    cat.ledger_for_user(userid, "0000-01-01", "9999-12-31")
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.key, t.customer_amount))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Replaying any sequence of operations a second time changes nothing, and the books
    /// balance after each pass.
    #[test]
    fn replaying_operations_gives_the_same_ledger(ops in proptest::collection::vec(op(), 1..25)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let cat = catalog(dir.path()).await;
            let u = user(&cat, "alice").await;
            let b = Billing::new(cat.clone(), policy());
            let start = today();
            run(&b, &cat, u, &ops, start).await;
            let once = ledger(&cat, u).await;
            assert_balanced(&b).await;
            // Feeds created or deleted again would change what later days cost; a replay
            // of the same days charges nothing new whatever the feeds are now.
            let money: Vec<Op> = ops
                .iter()
                .filter(|o| !matches!(o, Op::AddFeed | Op::DeleteFeed))
                .cloned()
                .collect();
            run(&b, &cat, u, &money, start).await;
            assert_eq!(ledger(&cat, u).await, once);
            assert_balanced(&b).await;
        });
    }
}

/// A month's use past the plan's allowances is charged once, when the month is over.
/// A cluster's nodes share one PostgreSQL catalog: two services charging the same days at
/// once charge each day once, refunds and reversals post once, and the books balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_on_postgres_charge_each_day_once() {
    let pg = postgres::Postgres::start();
    let cat = Catalog::open_postgres(&pg.url()).await.unwrap();
    let alice = user(&cat, "alice").await;
    for name in ["a", "b", "c"] {
        cat.create_feed(alice, name, "", 5, "").await.unwrap();
    }
    let (one, two) = (
        Billing::new(cat.clone(), policy()),
        Billing::new(cat.clone(), policy()),
    );
    let start = today();
    one.top_up(alice, 500, "pay-1", start).await.unwrap();
    let day10 = plus(start, 10);
    let (r1, r2) = tokio::join!(one.accrue(day10), two.accrue(day10));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.posted + r2.posted, 7, "{r1:?} {r2:?}");
    assert_eq!(r1.pence + r2.pence, 5);
    let (a, b) = tokio::join!(
        one.refund(alice, 100, "ref-1", day10),
        two.refund(alice, 100, "ref-1", day10)
    );
    let news = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|p| matches!(p, Posted::New(_)))
        .count();
    assert_eq!(news, 1, "one refund for one reference");
    // 395p left: refunds of 300p under three references, at once on both nodes, fit one
    // at a time but not together.
    let (a, b, c) = tokio::join!(
        one.refund(alice, 300, "ref-2", day10),
        two.refund(alice, 300, "ref-3", day10),
        one.refund(alice, 300, "ref-4", day10)
    );
    let results = [a, b, c];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(BillingError::RefundTooLarge { .. }))),
        "{results:?}"
    );
    let (a, b) = tokio::join!(
        one.reverse("topup:pay-1", day10),
        two.reverse("topup:pay-1", day10)
    );
    let news = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|p| matches!(p, Posted::New(_)))
        .count();
    assert_eq!(news, 1, "one reversal");
    assert_eq!(
        one.position(alice, day10).await.unwrap().balance_pence,
        500 - 5 - 100 - 300 - 500
    );
    assert_balanced(&one).await;
}

/// The days `userid` was charged for, with the feeds each was charged for.
async fn charged_days(cat: &Catalog, userid: i64) -> Vec<(String, i64)> {
    cat.ledger_for_user(userid, "0000-01-01", "9999-12-31")
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.kind == "accrual")
        .map(|t| (t.effective_date, t.quantity))
        .collect()
}

/// A day is charged for the most feeds the account held at once that day, not for what it
/// has when the charge runs: feeds deleted later the same day still pay for it.
#[tokio::test]
async fn each_day_is_charged_for_the_feeds_held_that_day() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path()).await;
    let alice = user(&cat, "alice").await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d"] {
        ids.push(cat.create_feed(alice, name, "", 5, "").await.unwrap());
    }
    for id in &ids[..3] {
        cat.delete_feed_row(*id).await.unwrap();
    }
    let billing = Billing::new(cat.clone(), policy());
    let start = today();
    billing.top_up(alice, 1000, "pay-1", start).await.unwrap();
    billing.accrue(plus(start, 1)).await.unwrap();
    let charged = charged_days(&cat, alice).await;
    assert_eq!(
        charged,
        vec![(start.to_string(), 4)],
        "four feeds held today"
    );
    // The next day nothing recorded (the snapshot did not run): the one feed left.
    billing.accrue(plus(start, 2)).await.unwrap();
    let last = charged_days(&cat, alice).await.pop();
    assert_eq!(last, Some((plus(start, 1).to_string(), 1)));
    // A reversed charge is no longer exported as usage; the other still is.
    let key = format!("accrual:{alice}:{start}");
    billing.reverse(&key, plus(start, 2)).await.unwrap();
    let events = billing
        .export(
            start,
            plus(start, 2),
            plus(start, 2),
            ynni_billing::export::Format::Stripe,
        )
        .await
        .unwrap();
    let keys: Vec<&str> = events
        .iter()
        .filter_map(|e| e["identifier"].as_str())
        .filter(|k| k.starts_with("accrual:"))
        .collect();
    assert_eq!(keys, [format!("accrual:{alice}:{}", plus(start, 1))]);
    assert_balanced(&billing).await;
}

/// A day's values are exported once the day is settled, not the morning after: its counts may
/// still be on their way from the shards, and a meter that keeps the first value it is sent
/// for a day would keep the short one.
#[tokio::test]
async fn a_days_values_are_exported_once_it_is_settled() {
    use ynni_core::catalog::Handled;
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path()).await;
    let alice = user(&cat, "alice").await;
    let billing = Billing::new(cat.clone(), policy());
    let day = today();
    let handled = Handled {
        http_values: 7,
        mqtt_values: 0,
        points: 0,
    };
    cat.set_usage_handled(&[(alice, day.to_string(), handled)])
        .await
        .unwrap();
    let values = |today: NaiveDate| {
        let billing = &billing;
        async move {
            billing
                .export(
                    day,
                    plus(day, 5),
                    today,
                    ynni_billing::export::Format::Stripe,
                )
                .await
                .unwrap()
                .iter()
                .filter_map(|e| e["identifier"].as_str().map(str::to_string))
                .filter(|k| k.starts_with("values:"))
                .count()
        }
    };
    assert_eq!(values(plus(day, 1)).await, 0, "the morning after");
    assert_eq!(values(plus(day, 2)).await, 1, "settled");
}

/// Once numbered, a month's statement never changes: the days a run charges late into it
/// and its overage are all posted before it is numbered, and usage counted after cannot add
/// an overage to it.
#[tokio::test]
async fn a_numbered_month_is_final() {
    use ynni_billing::overage::Overage;
    use ynni_core::catalog::Handled;
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path()).await;
    let alice = user(&cat, "alice").await;
    for name in ["a", "b", "c"] {
        cat.create_feed(alice, name, "", 5, "").await.unwrap();
    }
    let mut p = policy();
    p.plans.get_mut("standard").unwrap().overage = Overage {
        included_values_per_month: 10_000,
        pence_per_1000_values: 5,
        included_bytes: 0,
        pence_per_gb_month: 0,
    };
    let billing = Billing::new(cat.clone(), p);
    billing
        .top_up(alice, 5_000, "pay-1", today())
        .await
        .unwrap();
    // A month ahead, whole.
    let first = next_january();
    let month = first.format("%Y-%m").to_string();
    let next = plus(first, 31);
    billing.accrue(plus(first, 20)).await.unwrap();
    // The day after the day after: settled, but the run that charges the month's last days
    // and its overage has not been.
    let settled = plus(next, ynni_billing::SETTLE_DAYS);
    let draft = billing.statement(alice, &month, settled).await.unwrap();
    assert_eq!(
        draft.number, None,
        "numbered before its last days were charged"
    );
    billing.accrue(settled).await.unwrap();
    let issued = billing.statement(alice, &month, settled).await.unwrap();
    assert!(issued.number.is_some());
    assert!(issued.charges_pence > draft.charges_pence, "{issued:?}");
    // Values of the month counted late, past the allowance: no overage into the issued month.
    let handled = Handled {
        http_values: 50_000,
        mqtt_values: 0,
        points: 0,
    };
    cat.set_usage_handled(&[(alice, plus(first, 30).to_string(), handled)])
        .await
        .unwrap();
    billing.accrue(plus(settled, 1)).await.unwrap();
    billing.accrue(plus(settled, 5)).await.unwrap();
    let key = format!("overage:{alice}:{month}");
    assert!(cat.ledger_tx(&key).await.unwrap().is_none(), "late overage");
    let later = billing
        .statement(alice, &month, plus(settled, 9))
        .await
        .unwrap();
    assert_eq!(later, issued);
    assert_balanced(&billing).await;
}

/// Storage past the allowance is charged by the month's average over all its days: a month's
/// last day holding 31 GB is one GB-month, not 31.
#[tokio::test]
async fn storage_is_averaged_over_the_whole_month() {
    use ynni_billing::overage::Overage;
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path()).await;
    let alice = user(&cat, "alice").await;
    let mut p = policy();
    p.plans.get_mut("standard").unwrap().overage = Overage {
        included_values_per_month: 0,
        pence_per_1000_values: 0,
        included_bytes: 0,
        pence_per_gb_month: 31,
    };
    let billing = Billing::new(cat.clone(), p);
    let first = next_january();
    cat.set_usage_snapshot(alice, &plus(first, 30).to_string(), 0, 0, 31_000_000_000)
        .await
        .unwrap();
    billing.accrue(plus(first, 32)).await.unwrap();
    let tx = overage_of(&cat, alice, first).await;
    assert_eq!(tx.customer_amount, 31, "{tx:?}");
}

/// Statement numbers run on without gaps on PostgreSQL too, with statements read again and
/// again and first made by two services at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_numbers_have_no_gaps_on_postgres() {
    let pg = postgres::Postgres::start();
    let cat = Catalog::open_postgres(&pg.url()).await.unwrap();
    let mut users = Vec::new();
    for name in ["alice", "bobby", "carol", "derek"] {
        users.push(user(&cat, name).await);
    }
    let mut numbers = Vec::new();
    for month in ["2026-01", "2026-02", "2026-03"] {
        for pair in users.chunks(2) {
            let (a, b) = tokio::join!(
                cat.statement_number(pair[0], month),
                cat.statement_number(pair[1], month)
            );
            numbers.push(a.unwrap());
            numbers.push(b.unwrap());
            for &u in pair {
                let again = cat.statement_number(u, month).await.unwrap();
                assert!(numbers.contains(&again));
            }
        }
    }
    numbers.sort_unstable();
    let first = numbers[0];
    assert_eq!(numbers, (first..first + 12).collect::<Vec<i64>>());
}

#[tokio::test]
async fn values_past_the_allowance_are_charged_once_for_the_month() {
    use ynni_billing::overage::Overage;
    use ynni_core::catalog::Handled;
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path()).await;
    let alice = user(&cat, "alice").await;
    let mut p = policy();
    let plan = p.plans.get_mut("standard").unwrap();
    plan.overage = Overage {
        included_values_per_month: 10_000,
        pence_per_1000_values: 5,
        included_bytes: 0,
        pence_per_gb_month: 0,
    };
    let billing = Billing::new(cat.clone(), p);
    // A month ahead, whole: 45,000 values received in it, 35,000 past the allowance: 175p.
    let first = next_january();
    let handled = Handled {
        http_values: 10_000,
        mqtt_values: 5_000,
        points: 0,
    };
    let rows = vec![
        (alice, plus(first, 3).to_string(), handled),
        (alice, plus(first, 20).to_string(), handled),
    ];
    cat.set_usage_handled(&rows).await.unwrap();
    // On the month's first day after, its last day's values may still be on their way from
    // the shards: nothing is charged yet.
    let next_month = plus(first, 31);
    billing.accrue(next_month).await.unwrap();
    let month = first.format("%Y-%m").to_string();
    let key = format!("overage:{alice}:{month}");
    assert!(
        cat.ledger_tx(&key).await.unwrap().is_none(),
        "charged early"
    );
    // They arrive: 15,000 more on the month's last day, 20,000 more past the allowance.
    cat.set_usage_handled(&[(alice, plus(first, 30).to_string(), handled)])
        .await
        .unwrap();
    let settled = plus(first, 32);
    billing.accrue(settled).await.unwrap();
    billing.accrue(plus(first, 33)).await.unwrap();
    let tx = cat.ledger_tx(&key).await.unwrap().expect("charged");
    assert_eq!(tx.customer_amount, 175, "{tx:?}");
    assert_eq!(
        billing
            .position(alice, settled)
            .await
            .unwrap()
            .balance_pence,
        -175
    );
    assert_balanced(&billing).await;
}

/// A month's overage (settled by the run after the next month's first day) and each day's
/// charge are priced with the plan the account was on when that month or day ended: a plan
/// chosen in between, before the run, does not reprice them.
#[tokio::test]
async fn a_plan_chosen_after_a_month_ends_does_not_reprice_it() {
    use ynni_billing::overage::Overage;
    use ynni_core::catalog::Handled;
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path()).await;
    let alice = user(&cat, "alice").await;
    cat.create_feed(alice, "power", "", 5, "").await.unwrap();
    let mut p = policy();
    p.plans.get_mut("standard").unwrap().overage = Overage {
        included_values_per_month: 10_000,
        pence_per_1000_values: 5,
        included_bytes: 0,
        pence_per_gb_month: 0,
    };
    let mut cheap = p.plans["standard"].clone();
    cheap.name = "cheap".into();
    cheap.feed_year_pence = 40;
    cheap.overage.pence_per_1000_values = 1;
    p.plans.insert("cheap".into(), cheap);
    let billing = Billing::new(cat.clone(), p);
    // A month ahead: 45,000 values, 35,000 past the allowance (175p on standard, 35p on cheap).
    let first = next_january();
    let handled = Handled {
        http_values: 45_000,
        mqtt_values: 0,
        points: 0,
    };
    cat.set_usage_handled(&[(alice, plus(first, 10).to_string(), handled)])
        .await
        .unwrap();
    // Cheap from midday on the next month's first day, before the run that settles the month.
    let next = plus(first, 31);
    let noon = next.and_hms_opt(12, 0, 0).unwrap().and_utc().timestamp();
    cat.set_billing_plan(alice, "cheap", noon).await.unwrap();
    billing.accrue(plus(first, 32)).await.unwrap();

    let tx = overage_of(&cat, alice, first).await;
    assert_eq!(tx.customer_amount, 175, "standard's price: {tx:?}");
    // Each day at the price per feed of the plan it ended on.
    let rate = |day: NaiveDate| {
        let cat = cat.clone();
        async move {
            cat.ledger_tx(&format!("accrual:{alice}:{day}"))
                .await
                .unwrap()
                .map(|t| t.rate)
        }
    };
    assert_eq!(
        rate(plus(first, 30)).await,
        Some(100),
        "the month's last day"
    );
    assert_eq!(rate(next).await, Some(40), "the day cheap was chosen");
    assert_balanced(&billing).await;
}
