//! `ynni user add|list`: account management without a running server.

use anyhow::{Context, bail};
use serde_json::json;
use ynni_config::Settings;
use ynni_core::account_rules::{check_email, check_password, check_username};
use ynni_core::catalog::{CreateRefusal, NewUser};
use ynni_core::{Catalog, password, timezone};
use ynni_storage::DataDir;

use crate::cli::UserAddArgs;

/// The catalog the server would use: the cluster's PostgreSQL with `[cluster]`, else the
/// SQLite file in the data directory.
pub(crate) async fn open_catalog(settings: &Settings) -> anyhow::Result<Catalog> {
    if let Some(cluster) = &settings.cluster {
        return Catalog::open_postgres(&cluster.postgres)
            .await
            .context("opening the catalog in cluster.postgres");
    }
    let dir = DataDir::open(&settings.data_dir)?;
    Catalog::open_sqlite(&dir.catalog_path())
        .await
        .with_context(|| format!("opening catalog {}", dir.catalog_path().display()))
}

pub async fn add(settings: &Settings, args: &UserAddArgs) -> anyhow::Result<()> {
    check_username(&args.username)?;
    check_email(&args.email)?;
    check_password(&args.password)?;
    if !timezone::is_listed(&args.timezone) {
        bail!(
            "unknown time zone {:?} (use an IANA name such as Europe/London)",
            args.timezone
        );
    }
    let catalog = open_catalog(settings).await?;
    let pass = args.password.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pass)).await??;
    let new = NewUser {
        username: args.username.clone(),
        email: args.email.clone(),
        password_hash: hash,
        timezone: args.timezone.clone(),
        admin: args.admin,
    };
    let created = catalog.create_user(&new, false).await?;
    catalog.close().await;
    let user = match created {
        Ok(u) => u,
        Err(CreateRefusal::UsernameTaken) => bail!("Username already exists"),
        Err(CreateRefusal::NotFirstUser) => bail!("account creation refused"),
    };
    let out = json!({
        "success": true,
        "userid": user.id,
        "username": user.username,
        "admin": user.admin,
        "apikey_read": user.apikey_read,
        "apikey_write": user.apikey_write,
    });
    println!("{out}");
    Ok(())
}

pub async fn list(settings: &Settings, with_keys: bool) -> anyhow::Result<()> {
    let catalog = open_catalog(settings).await?;
    let users = catalog.list_users().await?;
    catalog.close().await;
    let rows: Vec<_> = users
        .into_iter()
        .map(|u| {
            let mut row = json!({
                "id": u.id,
                "username": u.username,
                "email": u.email,
                "admin": u.admin,
                "timezone": u.timezone,
                "created": u.created,
                "lastlogin": u.lastlogin,
            });
            if with_keys {
                row["apikey_read"] = json!(u.apikey_read);
                row["apikey_write"] = json!(u.apikey_write);
            }
            row
        })
        .collect();
    println!("{}", serde_json::Value::Array(rows));
    Ok(())
}
