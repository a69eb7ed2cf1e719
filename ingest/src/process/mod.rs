//! Process lists: the catalog, the stored and JSON forms, the parsed form a shard keeps, and the
//! engine that runs it.

pub mod catalog;
mod energy;
pub mod engine;
pub mod list;
mod parsed;
mod php;
mod typed;

pub use catalog::{CATALOG, Context, ProcessDef};
pub use engine::{DISABLED_PREFIX, Host, Outcome, StateKind, run, run_list};
pub use parsed::{ProcessList, Step};
pub use typed::Process;

#[cfg(test)]
mod tests;
