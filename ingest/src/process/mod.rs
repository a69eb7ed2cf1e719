//! Process lists: the catalog, the stored and JSON forms, and the engine that runs them.

pub mod catalog;
pub mod engine;
pub mod list;

pub use catalog::{CATALOG, Context, ProcessDef};
pub use engine::{Host, Outcome, StateKind, run};

#[cfg(test)]
mod tests;
