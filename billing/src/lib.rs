//! Running ynni as a hosted service (issue 18): plans, what each day costs, an append-only
//! double-entry ledger in integer pence, where each user stands, statements and exports.
//!
//! The ledger's rows live in the catalog (`ynni_core::catalog::ledger`, on SQLite or the
//! cluster's PostgreSQL); this crate decides what is posted and what it means.

pub mod accrual;
pub mod books;
mod error;
pub mod export;
pub mod limits;
pub mod overage;
pub mod plan;
mod service;
pub mod standing;
pub mod statement;

pub use error::BillingError;
pub use plan::{Plan, Policy};
pub use service::{
    Account, AccrualRun, Billing, CATCH_UP_DAYS, QUOTA_REFUSALS, SETTLE_DAYS, describe_metrics,
    utc_day,
};
pub use standing::{Position, Standing};
pub use statement::Statement;
