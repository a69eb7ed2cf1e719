//! The HTTP side of ynni: emoncms's API (routes, parameters, replies) over axum.

mod api;
mod auth;
mod cookies;
mod params;
mod ratelimit;
mod reply;
mod route;
mod server;
mod state;

pub use server::{WebError, bind, serve};
pub use state::AppState;
