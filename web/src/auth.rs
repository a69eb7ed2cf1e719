//! Who is calling: an apikey (query, then form, then `devicekey`, then
//! `Authorization: Bearer`), else the session cookie, else nobody.

use axum::http::{HeaderMap, header};
use ynni_core::catalog::{KeyKind, User};
use ynni_core::keys::looks_like_apikey;

use crate::cookies;
use crate::params::Params;
use crate::state::AppState;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub write: bool,
    /// Set for apikey callers; interactive-only actions refuse them.
    pub via_apikey: bool,
    /// The cookie session token, for logout and password changes.
    pub session_token: Option<String>,
    /// Set for a device key: the only node it may post, and nothing but `input/post|bulk`.
    pub device_node: Option<String>,
}

pub enum Auth {
    Anonymous,
    Caller(Box<Caller>),
    /// A key was presented and matches nothing: the request ends with 401.
    InvalidKey,
}

/// The key a request presents, in emoncms's precedence order. Empty values count as absent.
pub fn presented_key<'a>(params: &'a Params, headers: &'a HeaderMap) -> Option<&'a str> {
    let non_empty = |v: Option<&'a str>| v.filter(|s| !s.is_empty());
    non_empty(params.get_or_post("apikey"))
        .or_else(|| non_empty(params.get_or_post("devicekey")))
        .or_else(|| {
            let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
            non_empty(Some(h.strip_prefix("Bearer ").unwrap_or(h).trim()))
        })
}

pub async fn authenticate(
    state: &AppState,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Auth, ynni_core::CatalogError> {
    if let Some(key) = presented_key(params, headers) {
        if !looks_like_apikey(key) {
            return Ok(Auth::InvalidKey);
        }
        // A device key opens a write session bound to its node; an account apikey sent as
        // `devicekey` matches no device, so it never opens a full session.
        if params.get_or_post("apikey").is_none_or(str::is_empty)
            && params
                .get_or_post("devicekey")
                .is_some_and(|d| !d.is_empty())
        {
            let Some(device) = state.catalog.device_by_key(key).await? else {
                return Ok(Auth::InvalidKey);
            };
            let Some(user) = state.catalog.user_by_id(device.userid).await? else {
                return Ok(Auth::InvalidKey);
            };
            return Ok(Auth::Caller(Box::new(Caller {
                user,
                write: true,
                via_apikey: true,
                session_token: None,
                device_node: Some(device.nodeid),
            })));
        }
        return Ok(match state.catalog.user_by_apikey(key).await? {
            Some((user, kind)) => Auth::Caller(Box::new(Caller {
                user,
                write: kind == KeyKind::Write,
                via_apikey: true,
                session_token: None,
                device_node: None,
            })),
            None => Auth::InvalidKey,
        });
    }
    if let Some(token) = cookies::session_token(headers)
        && let Some(session) = state.catalog.session(&token).await?
        && let Some(user) = state.catalog.user_by_id(session.userid).await?
    {
        return Ok(Auth::Caller(Box::new(Caller {
            user,
            write: true,
            via_apikey: false,
            session_token: Some(token),
            device_node: None,
        })));
    }
    Ok(Auth::Anonymous)
}
