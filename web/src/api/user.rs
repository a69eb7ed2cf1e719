//! `user/<action>[.json]`: registration, login, sessions, keys and profile, answering as
//! emoncms 11.x does (see `shared/spec/emoncms.md` §7).

use std::time::Duration;

use axum::http::header;
use axum::response::Response;
use serde_json::{Value, json};
use ynni_config::Registration;
use ynni_core::account_rules::{check_email, check_password, check_username};
use ynni_core::catalog::{CreateRefusal, KeyKind, NewUser, User};
use ynni_core::{password, timezone};

use super::{Call, profile};
use crate::auth::Caller;
use crate::cookies;
use crate::error::{ApiError, ApiResult};
use crate::params::php_falsy;
use crate::reply;
use ynni_core::login_limit::{Attempt, Scope, TooMany};
use ynni_core::ratelimit::{Key, client_key};

const TOO_MANY: &str = "Too many attempts, please try again later";
const API_KEY_REFUSED: &str =
    "This action requires an interactive login and cannot be performed with an API key";

pub async fn handle(call: &Call<'_>) -> ApiResult {
    let action = call.route.action.as_str();
    // Actions for callers without a session (or with any session), in emoncms's order.
    match (action, call.caller) {
        ("login", None) => return login(call).await,
        ("register", _) if registration_open(call).await => return register(call).await,
        ("auth", None) => return auth(call).await,
        ("gettimezones", _) => return Ok(gettimezones()),
        ("passwordreset" | "passwordreset-confirm" | "resend-verify", _) => {
            return Err(ApiError::not_implemented(
                "email password reset and verification",
            ));
        }
        _ => {}
    }
    let Some(caller) = call.caller else {
        return Err(ApiError::False);
    };
    match action {
        "session" => return Ok(session(caller)),
        "getuuid" => {
            let uuid = &caller.user.uuid;
            return Ok(reply::json(json!({"success": true, "message": uuid})));
        }
        "timezone" => {
            let offset = timezone::offset_now_secs(&caller.user.timezone);
            return Ok(reply::json(json!(offset)));
        }
        "gettimezone" => return Ok(reply::json(json!(caller.user.timezone))),
        // A state change, so a scripted request only (a followed link or an image must not
        // end the session: see `csrf`).
        "logout" if !caller.via_apikey && caller.write => return logout(call, caller).await,
        _ => {}
    }
    if caller.via_apikey {
        return Err(ApiError::fail(API_KEY_REFUSED));
    }
    if !caller.write {
        return Err(ApiError::False);
    }
    match action {
        "get" => Ok(get(caller)),
        "set" => set(call, caller).await,
        "newapikeyread" => newapikey(call, caller, KeyKind::Read).await,
        "newapikeywrite" => newapikey(call, caller, KeyKind::Write).await,
        "changepassword" => changepassword(call, caller).await,
        "changeusername" => changeusername(call, caller).await,
        "changeemail" => changeemail(call, caller).await,
        "deleteall" => Err(ApiError::not_implemented("user/deleteall")),
        _ => Err(ApiError::False),
    }
}

async fn registration_open(call: &Call<'_>) -> bool {
    match call.state.settings.users.registration {
        Registration::Open => true,
        Registration::Closed => false,
        // A failed count reads as "closed"; the create below re-checks atomically anyway.
        Registration::FirstUser => matches!(call.state.catalog.count_users().await, Ok(0)),
    }
}

fn window(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

async fn register(call: &Call<'_>) -> ApiResult {
    let limits = &call.state.settings.limits;
    let p = call.params;
    if call.state.limiter.hit(
        Key::new("register", &[&client_key(call.peer)]),
        limits.register_attempts,
        window(limits.register_window_s),
    ) {
        return Err(ApiError::fail(TOO_MANY));
    }
    // A cluster with Redis counts registrations once for all nodes as well.
    if let Some(shared) = &call.state.shared_limits {
        let counted = shared
            .over(
                "register",
                call.peer,
                limits.register_attempts,
                window(limits.register_window_s),
            )
            .await;
        match counted {
            Ok(true) => return Err(ApiError::fail(TOO_MANY)),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "shared registration limits unavailable; this node's apply");
            }
        }
    }
    let (username, pass, email) = (p.post("username"), p.post("password"), p.post("email"));
    let (Some(username), Some(pass), Some(email)) = (username, pass, email) else {
        return Err(ApiError::fail(
            "Missing username, password or email parameter",
        ));
    };
    if [username, pass, email].iter().any(|v| php_falsy(Some(v))) {
        return Err(ApiError::fail(
            "Missing username, password or email parameter",
        ));
    }
    check_username(username).map_err(ApiError::fail)?;
    if call.state.catalog.username_exists(username).await? {
        return Err(ApiError::fail("Username already exists"));
    }
    check_email(email).map_err(ApiError::fail)?;
    check_password(pass).map_err(ApiError::fail)?;
    let tz = p
        .post("timezone")
        .filter(|t| timezone::is_listed(t))
        .unwrap_or("UTC");
    let hash = hash_password(call, pass.to_string()).await?;
    let new = NewUser {
        username: username.to_string(),
        email: email.to_string(),
        password_hash: hash,
        timezone: tz.to_string(),
        admin: false,
    };
    let first_only = call.state.settings.users.registration == Registration::FirstUser;
    match call.state.catalog.create_user(&new, first_only).await? {
        Ok(user) => {
            tracing::info!(userid = user.id, username = %user.username, admin = user.admin, "user registered");
            Ok(reply::json(json!({
                "success": true,
                "verifyemail": false,
                "userid": user.id,
                "apikey_read": user.apikey_read,
                "apikey_write": user.apikey_write,
            })))
        }
        Err(CreateRefusal::UsernameTaken) => Err(ApiError::fail("Username already exists")),
        Err(CreateRefusal::NotFirstUser) => Err(ApiError::False),
    }
}

/// The outcome of checking the username/password form fields of `login` and `auth`.
enum Credentials {
    Valid(Box<User>),
    Wrong,
}

/// The username and password fields of a `login` or `auth` form, refused (with emoncms's
/// message) unless both are given and the username follows the account rules. Nothing is
/// counted or looked up for a refused form, so a megabyte of username costs no more than the
/// request that carried it.
fn credentials_form<'a>(
    username: Option<&'a str>,
    password: Option<&'a str>,
) -> Result<(&'a str, &'a str), String> {
    if php_falsy(username) || php_falsy(password) {
        return Err("Username or password empty".to_string());
    }
    let (username, password) = (username.unwrap_or_default(), password.unwrap_or_default());
    check_username(username).map_err(|e| e.to_string())?;
    Ok((username, password))
}

/// Checks a username and password; a matching password stored in an emoncms scheme is
/// re-hashed with argon2. Unknown usernames cost the same argon2 work as wrong passwords, so
/// timing does not reveal which accounts exist.
async fn check_credentials(
    call: &Call<'_>,
    username: &str,
    pass: &str,
) -> Result<Credentials, ApiError> {
    let user = call.state.catalog.user_by_username(username).await?;
    let stored = user.as_ref().map(|u| (u.password.clone(), u.salt.clone()));
    let pass_owned = pass.to_string();
    let (ok, upgrade) = call
        .state
        .blocking_hash(move || match &stored {
            Some((hash, salt)) => {
                let stored = password::StoredPassword {
                    hash,
                    salt: salt.as_deref(),
                };
                (
                    password::verify(&pass_owned, &stored),
                    stored.needs_upgrade(),
                )
            }
            None => {
                password::verify_against_nothing(&pass_owned);
                (false, false)
            }
        })
        .await?;
    let Some(user) = user.filter(|_| ok) else {
        return Ok(Credentials::Wrong);
    };
    if upgrade {
        let fresh = hash_password(call, pass.to_string()).await?;
        // Only over the hash just checked: a change of password meanwhile stays.
        if call
            .state
            .catalog
            .upgrade_password_hash(user.id, &user.password, &fresh)
            .await?
        {
            tracing::info!(userid = user.id, "upgraded emoncms password hash to argon2");
        }
    }
    Ok(Credentials::Valid(Box::new(user)))
}

/// Validates the form, counts the attempt (see `login_limit`) and checks the password.
async fn guarded_credentials(call: &Call<'_>, scope: Scope) -> Result<Credentials, ApiError> {
    let p = call.params;
    let (username, pass) =
        credentials_form(p.post("username"), p.post("password")).map_err(ApiError::Fail)?;
    let limits = &call.state.settings.limits;
    let logins = &call.state.logins;
    let attempt: Attempt = logins
        .begin(
            scope,
            call.peer,
            username,
            limits.login_attempts,
            window(limits.login_window_s),
        )
        .map_err(|TooMany| ApiError::fail(TOO_MANY))?;
    // A cluster with Redis also counts the attempt once for all nodes.
    let shared = match &call.state.shared_limits {
        Some(s) => {
            let name = if scope == Scope::Auth {
                "auth"
            } else {
                "login"
            };
            let window = window(limits.login_window_s);
            match s
                .begin(name, call.peer, username, limits.login_attempts, window)
                .await
            {
                Ok(Some(a)) => Some((s, a)),
                Ok(None) => {
                    logins.not_a_guess(&attempt);
                    return Err(ApiError::fail(TOO_MANY));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "shared login limits unavailable; this node's apply");
                    None
                }
            }
        }
        None => None,
    };
    let checked = check_credentials(call, username, pass).await;
    if let Some((s, a)) = &shared {
        let taken_back = match &checked {
            Ok(Credentials::Valid(_)) => s.succeeded(a, scope == Scope::Auth).await,
            Ok(Credentials::Wrong) => Ok(()),
            Err(_) => s.not_a_guess(a).await,
        };
        if let Err(e) = taken_back {
            tracing::warn!(error = %e, "shared login limits: an attempt was not taken back");
        }
    }
    match checked {
        Ok(Credentials::Valid(user)) => {
            logins.succeeded(&attempt);
            Ok(Credentials::Valid(user))
        }
        Ok(Credentials::Wrong) => Ok(Credentials::Wrong),
        Err(e) => {
            logins.not_a_guess(&attempt);
            Err(e)
        }
    }
}

async fn login(call: &Call<'_>) -> ApiResult {
    let user = match guarded_credentials(call, Scope::Login).await? {
        Credentials::Valid(u) => u,
        Credentials::Wrong => return Err(ApiError::fail("Incorrect username or password")),
    };
    let days = i64::from(call.state.settings.users.session_days);
    let token = call
        .state
        .catalog
        .create_session(user.id, days * 86_400)
        .await?;
    call.state.catalog.record_login(user.id).await?;
    let remember = !php_falsy(call.params.post("rememberme"));
    let startingpage = call
        .params
        .post("referrer")
        .filter(|r| safe_referrer(r))
        .unwrap_or(&user.startingpage)
        .to_string();
    let mut r = reply::json(json!({
        "success": true,
        "message": "Login successful",
        "startingpage": startingpage,
    }));
    let cookie = cookies::set_session(
        &token,
        remember.then_some(days * 86_400),
        call.state.settings.http.secure_cookie || call.https,
    );
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(r)
}

/// A referrer may replace the starting page only if it is a relative path on this server.
fn safe_referrer(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 2000
        && !r.contains('\\')
        && !r.starts_with("//")
        && !r.contains(':')
}

async fn auth(call: &Call<'_>) -> ApiResult {
    match guarded_credentials(call, Scope::Auth).await? {
        Credentials::Valid(user) => Ok(reply::json(json!({
            "success": true,
            "userid": user.id,
            "apikey_write": user.apikey_write,
            "apikey_read": user.apikey_read,
        }))),
        Credentials::Wrong => Err(ApiError::fail("Incorrect authentication")),
    }
}

async fn logout(call: &Call<'_>, caller: &Caller) -> ApiResult {
    if let Some(token) = &caller.session_token {
        call.state.catalog.delete_session(token).await?;
        call.state
            .live
            .end_user_streams(caller.user.id, crate::ui::live::Opener::Session);
    }
    // emoncms's logout branch returns nothing, so the JSON reply is `false`.
    let mut r = reply::json_false();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookies::clear_session());
    Ok(r)
}

fn session(caller: &Caller) -> Response {
    let kind = if caller.write { "write" } else { "read" };
    if caller.via_apikey {
        return reply::json(json!({"userid": caller.user.id, "type": kind}));
    }
    // A login session also says whether it is an administrator's (the web UI offers the admin
    // page); an apikey never carries admin rights.
    reply::json(json!({"userid": caller.user.id, "type": kind, "admin": caller.user.admin}))
}

fn gettimezones() -> Response {
    let zones: Vec<Value> = timezone::all_names()
        .into_iter()
        .map(|name| {
            let secs = timezone::offset_now_secs(name);
            let sign = if secs < 0 { '-' } else { '+' };
            let abs = secs.unsigned_abs();
            json!({
                "id": name,
                "gmt_offset_secs": secs,
                "gmt_offset_text": format!("GMT {sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60),
            })
        })
        .collect();
    reply::json(Value::Array(zones))
}

/// emoncms reads this row with a plain mysqli query, so every value is a string.
fn get(caller: &Caller) -> Response {
    let u = &caller.user;
    reply::no_store(reply::json(json!({
        "id": u.id.to_string(),
        "username": u.username,
        "email": u.email,
        "gravatar": u.gravatar,
        "name": u.name,
        "location": u.location,
        "timezone": u.timezone,
        "language": u.language,
        "bio": u.bio,
        "startingpage": u.startingpage,
        "apikey_write": u.apikey_write,
        "apikey_read": u.apikey_read,
        "tags": u.tags,
    })))
}

async fn set(call: &Call<'_>, caller: &Caller) -> ApiResult {
    const ERR: &str = "Error updating user info";
    let Some(data) = call.params.post_or_get("data") else {
        return Err(ApiError::fail(ERR));
    };
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(data) else {
        return Err(ApiError::fail(ERR));
    };
    let update = profile::from_json(&map);
    // Day boundaries of daily processes follow the time zone: settled first as for a list.
    super::input_manage::settle(call, caller.user.id).await?;
    call.state
        .catalog
        .update_profile(caller.user.id, &update)
        .await?;
    // Day boundaries of daily processes follow the user's time zone.
    if let Err(e) = call.state.router.reload_user(caller.user.id).await {
        tracing::error!(error = %e, "could not reload the user's settings");
    }
    Ok(reply::ok_message("User info updated"))
}

async fn newapikey(call: &Call<'_>, caller: &Caller, kind: KeyKind) -> ApiResult {
    let key = call
        .state
        .catalog
        .regenerate_apikey(caller.user.id, kind)
        .await?;
    tracing::info!(userid = caller.user.id, ?kind, "apikey regenerated");
    call.state
        .live
        .end_user_streams(caller.user.id, crate::ui::live::Opener::Apikey);
    if matches!(kind, KeyKind::Write) {
        call.state.credentials_changed(caller.user.id);
    }
    Ok(reply::no_store(match kind {
        KeyKind::Read => reply::json(json!({"success": true, "read_apikey": key})),
        KeyKind::Write => reply::json(json!({"success": true, "write_apikey": key})),
    }))
}

async fn changepassword(call: &Call<'_>, caller: &Caller) -> ApiResult {
    let limits = &call.state.settings.limits;
    if call.state.limiter.hit(
        Key::new("changepassword", &[&client_key(call.peer)]),
        limits.password_change_attempts,
        window(limits.password_change_window_s),
    ) {
        return Err(ApiError::fail(TOO_MANY));
    }
    let old = call.params.post("old").unwrap_or_default();
    let new = call.params.post("new").unwrap_or_default();
    for p in [old, new] {
        check_password(p).map_err(ApiError::fail)?;
    }
    let (hash, salt, old_owned) = (
        caller.user.password.clone(),
        caller.user.salt.clone(),
        old.to_string(),
    );
    let ok = call
        .state
        .blocking_hash(move || {
            password::verify(
                &old_owned,
                &password::StoredPassword {
                    hash: &hash,
                    salt: salt.as_deref(),
                },
            )
        })
        .await?;
    if !ok {
        return Err(ApiError::fail("Old password incorect"));
    }
    let fresh = hash_password(call, new.to_string()).await?;
    call.state
        .catalog
        .set_password_hash(caller.user.id, &fresh)
        .await?;
    if let Some(token) = &caller.session_token {
        call.state
            .catalog
            .delete_other_sessions(caller.user.id, token)
            .await?;
        call.state
            .live
            .end_user_streams(caller.user.id, crate::ui::live::Opener::Session);
    }
    Ok(reply::ok_message("Password updated successfully"))
}

async fn changeusername(call: &Call<'_>, caller: &Caller) -> ApiResult {
    let name = call.params.get("username").unwrap_or_default();
    check_username(name).map_err(ApiError::fail)?;
    // emonSD's broker login finds its account by this name, in every process and after every
    // restart: renamed, the name could go to another account, and the devices with it.
    let legacy = &call.state.settings.mqtt.legacy_user;
    if !legacy.is_empty() && *legacy == caller.user.username {
        return Err(ApiError::fail(
            "This account receives the emonSD MQTT login (mqtt.legacy_user): change that \
             setting before renaming it",
        ));
    }
    // Any existing account counts, the caller's own included (as emoncms).
    if call.state.catalog.username_exists(name).await?
        || !call
            .state
            .catalog
            .set_username(caller.user.id, name)
            .await?
    {
        return Err(ApiError::fail("Username already exists"));
    }
    call.state.credentials_changed(caller.user.id);
    Ok(reply::ok_message("Username updated"))
}

async fn changeemail(call: &Call<'_>, caller: &Caller) -> ApiResult {
    let email = call.params.get("email").unwrap_or_default();
    check_email(email).map_err(ApiError::fail)?;
    call.state.catalog.set_email(caller.user.id, email).await?;
    Ok(reply::ok_message("Email updated"))
}

/// Hashes a new password on the bounded hashing pool.
async fn hash_password(call: &Call<'_>, pass: String) -> Result<String, ApiError> {
    call.state
        .blocking_hash(move || password::hash(&pass))
        .await?
        .map_err(|e| ApiError::Internal(e.into()))
}

#[cfg(test)]
mod tests {
    use super::credentials_form;

    #[test]
    fn a_username_the_rules_refuse_never_reaches_the_limiter() {
        let huge = "a".repeat(1 << 20);
        assert_eq!(
            credentials_form(Some(&huge), Some("secret")),
            Err("Username must be less than 30 characters".to_string())
        );
        assert_eq!(
            credentials_form(Some("al ice"), Some("secret")),
            Err("Username must only contain a-z and 0-9 characters".to_string())
        );
        assert_eq!(
            credentials_form(Some("alice"), None),
            Err("Username or password empty".to_string())
        );
        assert_eq!(
            credentials_form(Some("0"), Some("secret")),
            Err("Username or password empty".to_string())
        );
        assert_eq!(
            credentials_form(Some("alice"), Some("secret")),
            Ok(("alice", "secret"))
        );
    }
}
