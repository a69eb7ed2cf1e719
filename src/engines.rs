//! emoncms's engine ids as the catalog stores them (`feeds.engine`), for the commands that
//! move feed data between ynni and emoncms.

pub const FIXED: i64 = ynni_storage::ENGINE_FIXED as i64;
pub const VARIABLE: i64 = ynni_storage::ENGINE_VARIABLE as i64;
/// emoncms's MySQL engine; ynni keeps these points in a variable-interval file.
pub const MYSQL: i64 = 0;
/// Computed from a process list; no data of its own.
pub const VIRTUAL: i64 = 7;
