//! The HTTP side of ynni: emoncms's API (routes, parameters, replies) over axum, and the
//! browser UI built on it.

mod api;
mod auth;
mod client_ip;
mod cookies;
mod creates;
mod csrf;
mod error;
pub mod forward;
mod link_thread;
pub mod ops;
mod params;
mod reply;
mod route;
mod server;
mod splice;
mod state;
pub mod tls;
mod ui;

pub use forward::Forwarder;
pub use ops::Ops;
pub use server::{ServeOptions, WebError, bind, serve, serve_tls, serve_with};
pub use state::AppState;

/// The configuration of this crate's property tests (the fuzz targets run as unit tests):
/// `cases` per property, chosen so that each runs in well under a few seconds in a debug
/// build, unless `PROPTEST_CASES` asks for more (or fewer), e.g. for a longer run by hand.
#[cfg(test)]
pub(crate) fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    use proptest::test_runner::Config;
    // `Config::default()` reads `PROPTEST_CASES`; `with_cases` would override it.
    if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default()
    } else {
        Config::with_cases(cases)
    }
}
