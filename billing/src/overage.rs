//! What a month costs beyond a plan's allowances: values received over the included number,
//! and storage over the included bytes (byte-days averaged over all the month's days, a day
//! with nothing recorded counting as nothing stored). Charged once the month is over, as
//! `overage:<user>:<YYYY-MM>`, rounded down to whole pence.

/// A plan's allowances and the prices past them; zero prices charge nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overage {
    pub included_values_per_month: i64,
    /// Per 1,000 values past the allowance.
    pub pence_per_1000_values: i64,
    pub included_bytes: i64,
    /// Per GB (10^9 bytes) stored past the allowance for a month.
    pub pence_per_gb_month: i64,
}

/// The month's charges for `values` received and `avg_bytes` stored on average: (values,
/// storage), in pence.
pub fn month_charges(o: &Overage, values: i64, avg_bytes: i64) -> (i64, i64) {
    let extra_values = (values - o.included_values_per_month).max(0);
    let extra_bytes = (avg_bytes - o.included_bytes).max(0);
    let values_pence = extra_values.saturating_mul(o.pence_per_1000_values.max(0)) / 1000;
    let storage_pence =
        (i128::from(extra_bytes) * i128::from(o.pence_per_gb_month.max(0)) / 1_000_000_000) as i64;
    (values_pence, storage_pence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_passes_the_allowance_is_charged_rounded_down() {
        let o = Overage {
            included_values_per_month: 1_000_000,
            pence_per_1000_values: 2,
            included_bytes: 500_000_000,
            pence_per_gb_month: 10,
        };
        assert_eq!(month_charges(&o, 999_999, 400_000_000), (0, 0));
        assert_eq!(month_charges(&o, 1_000_999, 500_000_000), (1, 0));
        assert_eq!(month_charges(&o, 1_500_000, 2_500_000_000), (1000, 20));
        assert_eq!(
            month_charges(&Overage::default(), 9_999_999, 9_999_999_999),
            (0, 0)
        );
    }
}
