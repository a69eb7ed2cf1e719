//! What a user pays and may do: the plans an operator configures (`[billing]`), turned into
//! these types by the binary so this crate does not depend on the configuration's.

use std::collections::BTreeMap;

/// One plan. Prices are in pence; a limit of 0 means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    /// Per feed per year (emoncms.org: 100, £1), charged day by day for the feeds a user has.
    pub feed_year_pence: i64,
    /// Charged on the first day of each month.
    pub monthly_fee_pence: i64,
    pub max_feeds: u32,
    pub max_inputs: u32,
    /// Values a user may post per minute over HTTP.
    pub values_per_minute: u32,
    /// Seconds between two posts of one node over HTTP.
    pub min_post_interval_s: u32,
    /// Allowances and what exceeding them costs, charged monthly.
    pub overage: crate::overage::Overage,
}

/// Every plan, and what applies to users the operator has not placed on one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub plans: BTreeMap<String, Plan>,
    pub default_plan: String,
    /// Fewer days of runway than this shows the user a warning.
    pub warn_days: u32,
    /// Days after the balance reaches zero during which everything keeps working.
    pub grace_days: u32,
}

impl Policy {
    /// The plan called `name`, or the default plan when there is no such plan (a plan removed
    /// from the configuration moves its users to the default rather than making them free).
    pub fn plan(&self, name: Option<&str>) -> Option<&Plan> {
        name.and_then(|n| self.plans.get(n))
            .or_else(|| self.plans.get(&self.default_plan))
    }
}
