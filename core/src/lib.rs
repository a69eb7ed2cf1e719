//! Domain types and rules shared by every ynni role, and the catalog (users, keys, sessions)
//! over SQL.

pub mod account_rules;
pub mod boot_clock;
pub mod catalog;
pub mod fd_budget;
pub mod keys;
pub mod login_limit;
pub mod password;
pub mod peer_watch;
pub mod ratelimit;
pub mod shared_limit;
pub mod timezone;
pub mod tls;
pub mod user_queue;
pub mod vshard;

pub use catalog::{
    Catalog, CatalogError, CreationLock, DeviceRow, FeedRow, Imported, ImportedUser, InputRow,
};
