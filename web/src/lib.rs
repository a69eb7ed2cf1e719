//! The HTTP side of ynni: emoncms's API (routes, parameters, replies) over axum, and the
//! browser UI built on it.

mod api;
mod auth;
mod cookies;
mod csrf;
mod params;
mod reply;
mod route;
mod server;
mod state;
mod ui;

pub use server::{ServeOptions, WebError, bind, serve, serve_with};
pub use state::AppState;
