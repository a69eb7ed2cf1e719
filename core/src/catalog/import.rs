//! Rows brought over from another emoncms installation, keeping their ids (so process lists,
//! dashboards and device configurations that name them stay valid) and their apikeys (so
//! devices keep posting). Each import is idempotent: a row already there with the same
//! identity is left alone, and a different row in its place is reported, never overwritten.

use super::now_secs;
use super::on_db;
use super::users::{ForgetKeys, is_unique_violation};
use super::{Catalog, CatalogError, DeviceRow, FeedRow, InputRow};

/// An emoncms account as its `users` row has it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    /// emoncms's `sha256(salt . sha256(password))` hex, upgraded at the next login.
    pub password: String,
    pub salt: String,
    pub apikey_write: String,
    pub apikey_read: String,
    pub admin: bool,
    pub timezone: String,
}

/// What an import did with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    Created,
    /// The same row was already there (an earlier import).
    Unchanged,
    /// Something else holds its id or its unique name: nothing was written.
    Conflict(String),
}

/// An insert's outcome: `Created`, or the conflict `why` describes when a unique constraint of
/// `table` (its name with a trailing dot, as SQLite reports it) refused the row.
fn created_unless_clash<T>(
    result: Result<T, sqlx::Error>,
    table: &str,
    why: impl FnOnce() -> String,
) -> Result<Imported, CatalogError> {
    match result {
        Ok(_) => Ok(Imported::Created),
        Err(e) if is_unique_violation(&e, table) => Ok(Imported::Conflict(why())),
        Err(e) => Err(e.into()),
    }
}

/// The tables whose ids an import may set itself.
#[derive(Debug, Clone, Copy)]
pub(super) enum IdTable {
    Users,
    Feeds,
    Inputs,
    Devices,
    Apps,
    Dashboards,
}

impl Catalog {
    /// After a row was inserted with its own id: PostgreSQL's id sequence does not see such
    /// ids, so it is moved past the largest, lest the next created row clash with an imported
    /// one. SQLite's AUTOINCREMENT follows explicit ids by itself.
    pub(super) async fn follow_explicit_ids(&self, table: IdTable) -> Result<(), CatalogError> {
        let sql = match table {
            IdTable::Users => {
                "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT MAX(id) FROM users))"
            }
            IdTable::Feeds => {
                "SELECT setval(pg_get_serial_sequence('feeds', 'id'), (SELECT MAX(id) FROM feeds))"
            }
            IdTable::Inputs => {
                "SELECT setval(pg_get_serial_sequence('inputs', 'id'), (SELECT MAX(id) FROM inputs))"
            }
            IdTable::Devices => {
                "SELECT setval(pg_get_serial_sequence('devices', 'id'), (SELECT MAX(id) FROM devices))"
            }
            IdTable::Apps => {
                "SELECT setval(pg_get_serial_sequence('apps', 'id'), (SELECT MAX(id) FROM apps))"
            }
            IdTable::Dashboards => {
                "SELECT setval(pg_get_serial_sequence('dashboards', 'id'), (SELECT MAX(id) FROM dashboards))"
            }
        };
        if let super::Db::Postgres(p) = &self.db {
            sqlx::query(sql).execute(p).await?;
        }
        Ok(())
    }

    /// Imports an account under its own id where that id is free, otherwise under a new one;
    /// returns what happened and the id it has here.
    pub async fn import_user(&self, u: &ImportedUser) -> Result<(Imported, i64), CatalogError> {
        let same = |e: &super::User| {
            e.username.eq_ignore_ascii_case(&u.username)
                && e.apikey_write == u.apikey_write
                && e.apikey_read == u.apikey_read
        };
        if let Some(existing) = self.user_by_username(&u.username).await? {
            return Ok(if same(&existing) {
                (Imported::Unchanged, existing.id)
            } else {
                (
                    Imported::Conflict(format!(
                        "username {:?} already exists here with other apikeys",
                        u.username
                    )),
                    existing.id,
                )
            });
        }
        let id_free = self.user_by_id(u.id).await?.is_none();
        let _forget = ForgetKeys(self);
        // The emoncms id is kept when it is free here; otherwise the catalog picks one.
        let sql = if id_free {
            "INSERT INTO users (username, email, password, salt, apikey_write, apikey_read, \
             admin, uuid, timezone, created, id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id"
        } else {
            "INSERT INTO users (username, email, password, salt, apikey_write, apikey_read, \
             admin, uuid, timezone, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id"
        };
        let result = on_db!(&self.db, p => {
            let q = sqlx::query_scalar::<_, i64>(sql)
                .bind(&u.username)
                .bind(&u.email)
                .bind(&u.password)
                .bind(&u.salt)
                .bind(&u.apikey_write)
                .bind(&u.apikey_read)
                .bind(u.admin)
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(&u.timezone)
                .bind(now_secs());
            if id_free { q.bind(u.id) } else { q }.fetch_one(p).await
        });
        if id_free && result.is_ok() {
            self.follow_explicit_ids(IdTable::Users).await?;
        }
        let id = result.as_ref().ok().copied().unwrap_or(u.id);
        let imported = created_unless_clash(result, "users.", || {
            format!(
                "the apikeys of {:?} are already used by another account here",
                u.username
            )
        })?;
        Ok((imported, id))
    }

    pub async fn import_feed(&self, f: &FeedRow) -> Result<Imported, CatalogError> {
        if let Some(existing) = self.feed_by_id(f.id).await? {
            let same = existing.userid == f.userid
                && existing.name == f.name
                && existing.tag == f.tag
                && existing.engine == f.engine;
            return Ok(if same {
                Imported::Unchanged
            } else {
                Imported::Conflict(format!(
                    "feed id {} is already {}:{} of user {} here",
                    f.id, existing.tag, existing.name, existing.userid
                ))
            });
        }
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO feeds (id, userid, name, tag, public, engine, unit, processList, size) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(f.id)
        .bind(f.userid)
        .bind(&f.name)
        .bind(&f.tag)
        .bind(f.public)
        .bind(f.engine)
        .bind(&f.unit)
        .bind(&f.process_list)
        .bind(f.size)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        self.follow_explicit_ids(IdTable::Feeds).await?;
        Ok(Imported::Created)
    }

    pub async fn import_input(&self, i: &InputRow) -> Result<Imported, CatalogError> {
        let existing: Option<(i64, String, String)> = on_db!(&self.db, p => sqlx::query_as("SELECT userid, nodeid, name FROM inputs WHERE id = $1")
                .bind(i.id)
                .fetch_optional(p)
                .await)?;
        if let Some((userid, nodeid, name)) = existing {
            return Ok(
                if (userid, &nodeid, &name) == (i.userid, &i.nodeid, &i.name) {
                    Imported::Unchanged
                } else {
                    Imported::Conflict(format!(
                        "input id {} is already {nodeid}:{name} of user {userid} here",
                        i.id
                    ))
                },
            );
        }
        let result = on_db!(&self.db, p => sqlx::query(
            "INSERT INTO inputs (id, userid, nodeid, name, description, processList) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(i.id)
        .bind(i.userid)
        .bind(&i.nodeid)
        .bind(&i.name)
        .bind(&i.description)
        .bind(&i.process_list)
        .execute(p)
        .await
        .map(|r| r.rows_affected()));
        if result.is_ok() {
            self.follow_explicit_ids(IdTable::Inputs).await?;
        }
        created_unless_clash(result, "inputs.", || {
            format!(
                "input {}:{} of user {} already exists here with another id",
                i.nodeid, i.name, i.userid
            )
        })
    }

    /// Imports a device with its key (a new random key when it had none), under its id where
    /// free. The same device (user, node and key) already here is left alone.
    pub async fn import_device(&self, d: &DeviceRow) -> Result<Imported, CatalogError> {
        let existing: Option<(i64, String)> = on_db!(&self.db, p => sqlx::query_as("SELECT id, devicekey FROM devices WHERE userid = $1 AND nodeid = $2")
                .bind(d.userid)
                .bind(&d.nodeid)
                .fetch_optional(p)
                .await)?;
        if let Some((_, key)) = existing {
            return Ok(if d.devicekey.is_empty() || key == d.devicekey {
                Imported::Unchanged
            } else {
                Imported::Conflict(format!(
                    "user {} already has a device for node {:?} with another key",
                    d.userid, d.nodeid
                ))
            });
        }
        let key = if d.devicekey.is_empty() {
            crate::keys::new_apikey()?
        } else {
            d.devicekey.clone()
        };
        let id_free: Option<(i64,)> = on_db!(&self.db, p => sqlx::query_as("SELECT id FROM devices WHERE id = $1")
            .bind(d.id)
            .fetch_optional(p)
            .await)?;
        let _forget = ForgetKeys(self);
        let id_free = id_free.is_none();
        let sql = if id_free {
            "INSERT INTO devices (userid, nodeid, name, description, type, devicekey, id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        } else {
            "INSERT INTO devices (userid, nodeid, name, description, type, devicekey) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        };
        let result = on_db!(&self.db, p => {
            let q = sqlx::query(sql)
                .bind(d.userid)
                .bind(&d.nodeid)
                .bind(&d.name)
                .bind(&d.description)
                .bind(&d.kind)
                .bind(key);
            if id_free { q.bind(d.id) } else { q }
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        });
        if id_free && result.is_ok() {
            self.follow_explicit_ids(IdTable::Devices).await?;
        }
        created_unless_clash(result, "devices.", || {
            format!("the key of device {:?} is already used here", d.nodeid)
        })
    }
}
