//! What one day costs a user.
//!
//! A feed costs its plan's yearly price spread over the days of the calendar year it exists on.
//! A day's share is rarely whole pence (100p / 365 = 0.27p), so the charge of a day is the
//! whole pence that the year's running total crosses on that day: with `U` the feed-days of
//! the year before the day, each weighted by the price it was charged at, and `u` the day's,
//!
//! ```text
//! charge = floor((U + u) / days_in_year) - floor(U / days_in_year)
//! ```
//!
//! so a year of one feed at 100p costs exactly 100p, a feed created mid-year costs its share
//! (rounded down, never up), nothing is lost or charged twice from day to day, and the sum of
//! any run of days is the rounded total of those days. The monthly fee, if any, is charged whole
//! on the first day of each month.

use chrono::{Datelike, NaiveDate};

use crate::plan::Plan;

/// 365 or 366.
pub fn days_in_year(year: i32) -> i64 {
    if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
        366
    } else {
        365
    }
}

/// A day's charge in pence, given the year's weighted feed-days before it (`units_before`:
/// feeds × price per feed per year, summed over the earlier days) and the feeds it is charged
/// for. Returns the charge and the day's own units.
pub fn day_charge(plan: &Plan, date: NaiveDate, units_before: i64, feeds: i64) -> (i64, i64) {
    let diy = days_in_year(date.year());
    let units = feeds.max(0).saturating_mul(plan.feed_year_pence.max(0));
    let after = units_before.saturating_add(units);
    let feeds_charge = after.div_euclid(diy) - units_before.div_euclid(diy);
    let fee = if date.day() == 1 {
        plan.monthly_fee_pence.max(0)
    } else {
        0
    };
    (feeds_charge + fee, units)
}

/// What a user spends a day on average at `feeds` feeds, in hundredths of a penny (for the
/// runway: days of balance left).
pub fn daily_rate_centipence(plan: &Plan, feeds: i64, year: i32) -> i64 {
    let feeds_part = feeds.max(0) * plan.feed_year_pence.max(0) * 100 / days_in_year(year);
    // A month is 365.25 / 12 days on average.
    let fee_part = plan.monthly_fee_pence.max(0) * 100 * 12 * 100 / 36525;
    feeds_part + fee_part
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan(price: i64, fee: i64) -> Plan {
        Plan {
            name: "p".into(),
            feed_year_pence: price,
            monthly_fee_pence: fee,
            max_feeds: 0,
            max_inputs: 0,
            values_per_minute: 0,
            min_post_interval_s: 0,
            overage: Default::default(),
        }
    }

    /// Charges each day of `year` for the feeds `feeds(day)` says; returns the total.
    fn year_total(p: &Plan, year: i32, feeds: impl Fn(u32) -> i64) -> (i64, i64) {
        let mut units = 0;
        let mut total = 0;
        let mut day = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
        let mut n = 0;
        while day.year() == year {
            let (charge, u) = day_charge(p, day, units, feeds(n));
            assert!(charge >= 0);
            total += charge;
            units += u;
            n += 1;
            day = day.succ_opt().unwrap();
        }
        (total, units)
    }

    #[test]
    fn a_feed_for_a_whole_year_costs_its_price_exactly() {
        for year in [2025, 2028] {
            assert_eq!(year_total(&plan(100, 0), year, |_| 1).0, 100, "{year}");
            assert_eq!(year_total(&plan(100, 0), year, |_| 7).0, 700, "{year}");
        }
        // Twelve monthly fees on top.
        assert_eq!(year_total(&plan(100, 250), 2026, |_| 1).0, 100 + 12 * 250);
    }

    #[test]
    fn a_feed_created_on_1_july_costs_its_share() {
        // 184 of 365 days: 50.4p, charged 50p.
        let first_july = 181;
        let (total, _) = year_total(&plan(100, 0), 2026, |d| i64::from(d >= first_july));
        assert_eq!(total, 50);
    }

    proptest! {
        /// Over any run of days with feeds created and deleted, the charges sum to the prorated
        /// total rounded down: never more, and less by under a penny.
        #[test]
        fn charges_sum_to_the_prorated_total(
            feeds in proptest::collection::vec(0i64..50, 1..366),
            price in 0i64..10_000,
        ) {
            let p = plan(price, 0);
            let mut units = 0;
            let mut total = 0;
            let mut day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
            for f in &feeds {
                let (charge, u) = day_charge(&p, day, units, *f);
                prop_assert!(charge >= 0);
                total += charge;
                units += u;
                day = day.succ_opt().unwrap();
            }
            let feed_days: i64 = feeds.iter().sum();
            // Exact prorated cost in 1/365 pence.
            let exact = feed_days * price;
            prop_assert_eq!(total, exact / 365);
            prop_assert!(total * 365 <= exact && exact < (total + 1) * 365);
        }
    }
}
