//! Accounts: creation, lookup by name or apikey, profile and credential changes.

use super::on_db;
use super::{Catalog, CatalogError, Db, now_secs};
use crate::keys::new_apikey;

/// One account row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    /// argon2 PHC string, or an emoncms legacy hash when `salt` is set.
    pub password: String,
    pub salt: Option<String>,
    pub apikey_write: String,
    pub apikey_read: String,
    pub admin: bool,
    pub uuid: String,
    pub timezone: String,
    pub language: String,
    pub gravatar: String,
    pub name: String,
    pub location: String,
    pub bio: String,
    pub tags: String,
    pub startingpage: String,
    pub created: i64,
    pub lastlogin: i64,
}

/// Which of a user's two keys matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Read,
    Write,
}

/// What is needed to create an account; the password is already hashed (hashing is slow and
/// belongs on a blocking thread, not inside a database call).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub timezone: String,
    pub admin: bool,
}

/// How account creation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateRefusal {
    UsernameTaken,
    /// Only the first account may be created and one already exists.
    NotFirstUser,
}

/// The profile fields a user may change; every one is written (emoncms's `user/set`
/// overwrites the whole profile).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileUpdate {
    pub gravatar: String,
    pub name: String,
    pub location: String,
    pub timezone: String,
    pub language: String,
    pub bio: String,
    pub tags: String,
    pub startingpage: String,
}

/// The PostgreSQL advisory lock account creations take in turn ("accounts").
const ACCOUNT_CREATION_LOCK: i64 = 0x6163_636f_756e_7473;

/// More distinct keys than this empties the cache: a bound on memory far above one server's
/// users.
pub(super) const KEY_CACHE_LIMIT: usize = 100_000;

/// Forgets every remembered apikey and feed row when dropped, i.e. after the change to an
/// account or a feed it guards (successful or not), so no lookup can keep what was true before
/// it.
pub(super) struct ForgetKeys<'a>(pub(super) &'a Catalog);

impl Drop for ForgetKeys<'_> {
    fn drop(&mut self) {
        super::forget_keys(&self.0.keys);
        // The other nodes of a cluster forget theirs when PostgreSQL passes this on.
        if let super::Db::Postgres(pool) = &self.0.db {
            super::notify_key_change(pool);
        }
    }
}

const USER_COLUMNS: &str = "id, username, email, password, salt, apikey_write, apikey_read, \
     admin, uuid, timezone, language, gravatar, name, location, bio, tags, startingpage, \
     created, lastlogin";

/// Whether `e` is a unique-constraint refusal about `column` (`users.username`, or a prefix
/// such as `users.`). SQLite names the column in its message (`UNIQUE constraint failed:
/// users.username`); PostgreSQL names the constraint (`users_username`, `users_apikey_read_key`).
pub(super) fn is_unique_violation(e: &sqlx::Error, column: &str) -> bool {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            d.message().contains(column)
                || d.constraint()
                    .is_some_and(|c| c.contains(&column.replace('.', "_")))
        }
        _ => false,
    }
}

impl Catalog {
    /// Creates an account with fresh apikeys and uuid. The first account of a catalog is always
    /// an admin. With `only_if_first`, creation is refused once any account exists; the check
    /// and the insert are one statement, so two racing registrations cannot both win.
    pub async fn create_user(
        &self,
        new: &NewUser,
        only_if_first: bool,
    ) -> Result<Result<User, CreateRefusal>, CatalogError> {
        const INSERT: &str = "INSERT INTO users (username, email, password, apikey_write, \
             apikey_read, admin, uuid, timezone, created) \
             SELECT $1, $2, $3, $4, $5, ($6 OR NOT EXISTS (SELECT 1 FROM users)), $7, $8, $9 \
             WHERE NOT $10 OR NOT EXISTS (SELECT 1 FROM users) \
             RETURNING id";
        // A key collision needs 2^64 keys to become likely; one retry covers the impossible.
        for attempt in 0..2 {
            let (write_key, read_key) = (new_apikey()?, new_apikey()?);
            let uuid = uuid::Uuid::new_v4().to_string();
            // The one statement, run on either database's executor.
            macro_rules! insert {
                ($executor:expr) => {
                    sqlx::query_scalar::<_, i64>(INSERT)
                        .bind(&new.username)
                        .bind(&new.email)
                        .bind(&new.password_hash)
                        .bind(&write_key)
                        .bind(&read_key)
                        .bind(new.admin)
                        .bind(&uuid)
                        .bind(&new.timezone)
                        .bind(now_secs())
                        .bind(only_if_first)
                        .fetch_optional($executor)
                        .await
                };
            }
            let result = match &self.db {
                // SQLite runs one writer at a time: the statement's own check is enough.
                Db::Sqlite(p) => insert!(p),
                // PostgreSQL's statements see the table as it was when they began: two
                // registrations at once would each find no account and both be the first
                // (an admin). One at a time, under a lock held to the commit.
                Db::Postgres(p) => {
                    async {
                        let mut tx = p.begin().await?;
                        sqlx::query("SELECT pg_advisory_xact_lock($1)")
                            .bind(ACCOUNT_CREATION_LOCK)
                            .execute(&mut *tx)
                            .await?;
                        let id = insert!(&mut *tx)?;
                        tx.commit().await?;
                        Ok(id)
                    }
                    .await
                }
            };
            match result {
                Ok(Some(id)) => {
                    let user = self.user_by_id(id).await?.ok_or(sqlx::Error::RowNotFound)?;
                    return Ok(Ok(user));
                }
                Ok(None) => return Ok(Err(CreateRefusal::NotFirstUser)),
                Err(e) if is_unique_violation(&e, "users.username") => {
                    return Ok(Err(CreateRefusal::UsernameTaken));
                }
                Err(e) if attempt == 0 && is_unique_violation(&e, "apikey") => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(sqlx::Error::Protocol("could not allocate unique apikeys".into()).into())
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, CatalogError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(self.select_optional(sqlx::AssertSqlSafe(sql), id).await?)
    }

    /// Usernames compare without regard to ASCII case, as emoncms's MySQL collation does.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, CatalogError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)");
        Ok(self
            .select_optional(sqlx::AssertSqlSafe(sql), username)
            .await?)
    }

    pub async fn username_exists(&self, username: &str) -> Result<bool, CatalogError> {
        let row = on_db!(&self.db, p => sqlx::query("SELECT 1 FROM users WHERE lower(username) = lower($1)")
            .bind(username)
            .fetch_optional(p)
            .await.map(|r| r.is_some()))?;
        Ok(row)
    }

    /// The id of the account owning `key` if this process remembers it, without asking the
    /// database: for guesses that must cost no query (which node to hand a connection to);
    /// `user_by_apikey` decides who the caller is.
    pub fn remembered_user_id(&self, key: &str) -> Option<i64> {
        let key = key.to_ascii_lowercase();
        let cache = self.keys.read().unwrap_or_else(|p| p.into_inner());
        cache.map.get(&key).map(|(user, _)| user.id)
    }

    /// The account owning `key` and which of its keys it is. Keys compare case-insensitively
    /// (emoncms stores lowercase and accepts any hex case). Always reads the database, so a
    /// regenerated key stops working at once.
    pub async fn user_by_apikey(&self, key: &str) -> Result<Option<(User, KeyKind)>, CatalogError> {
        let key = key.to_ascii_lowercase();
        let generation = {
            let cache = self.keys.read().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.map.get(&key) {
                return Ok(Some(hit.clone()));
            }
            cache.generation
        };
        let sql =
            format!("SELECT {USER_COLUMNS} FROM users WHERE apikey_write = $1 OR apikey_read = $1");
        let sql = sqlx::AssertSqlSafe(sql);
        let user: Option<User> = self.select_optional(sql, &key).await?;
        let found = user.map(|u| {
            let kind = if u.apikey_write == key {
                KeyKind::Write
            } else {
                KeyKind::Read
            };
            (u, kind)
        });
        // Only real keys are remembered, so unknown keys cannot grow the cache.
        if let Some(hit) = &found {
            let mut cache = self.keys.write().unwrap_or_else(|p| p.into_inner());
            if cache.generation == generation && cache.enabled {
                if cache.map.len() >= KEY_CACHE_LIMIT {
                    cache.map.clear();
                }
                cache.map.insert(key, hit.clone());
            }
        }
        Ok(found)
    }

    pub async fn list_users(&self) -> Result<Vec<User>, CatalogError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        Ok(
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(p)
            .await)?,
        )
    }

    pub async fn count_users(&self) -> Result<i64, CatalogError> {
        Ok(
            on_db!(&self.db, p => sqlx::query_scalar("SELECT COUNT(*) AS n FROM users")
            .fetch_one(p)
            .await)?,
        )
    }

    /// Replaces one of the user's apikeys with a new random one and returns it; the old key
    /// no longer matches from the moment this returns.
    pub async fn regenerate_apikey(&self, id: i64, kind: KeyKind) -> Result<String, CatalogError> {
        let _forget = ForgetKeys(self);
        let sql = match kind {
            KeyKind::Read => "UPDATE users SET apikey_read = $1 WHERE id = $2",
            KeyKind::Write => "UPDATE users SET apikey_write = $1 WHERE id = $2",
        };
        let key = new_apikey()?;
        self.execute2(sql, &key, id).await?;
        Ok(key)
    }

    /// Stores a new (argon2) password hash and drops any legacy salt.
    pub async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), CatalogError> {
        let _forget = ForgetKeys(self);
        let sql = "UPDATE users SET password = $1, salt = NULL WHERE id = $2";
        self.execute2(sql, hash, id).await?;
        Ok(())
    }

    /// Replaces account `id`'s password hash with `fresh` (the same password, hashed anew)
    /// only if it is still `old`: a password change committed meanwhile is kept, not undone
    /// by the upgrade of the hash it replaced. Returns whether it was replaced.
    pub async fn upgrade_password_hash(
        &self,
        id: i64,
        old: &str,
        fresh: &str,
    ) -> Result<bool, CatalogError> {
        let _forget = ForgetKeys(self);
        let done = on_db!(&self.db, p => sqlx::query(
            "UPDATE users SET password = $1, salt = NULL WHERE id = $2 AND password = $3",
        )
        .bind(fresh)
        .bind(id)
        .bind(old)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Forgets this node's remembered accounts (which carry the login time), but announces
    /// nothing to the other nodes: a login changes no key, and every login emptying every
    /// node's cache would send each node's next posts to the database.
    pub async fn record_login(&self, id: i64) -> Result<(), CatalogError> {
        let sql = "UPDATE users SET lastlogin = $1 WHERE id = $2";
        let done = self.execute2(sql, now_secs(), id).await;
        super::forget_keys(&self.keys);
        done?;
        Ok(())
    }

    pub async fn update_profile(&self, id: i64, p: &ProfileUpdate) -> Result<(), CatalogError> {
        let _forget = ForgetKeys(self);
        on_db!(&self.db, db => sqlx::query(
            "UPDATE users SET gravatar = $1, name = $2, location = $3, timezone = $4, language = $5, \
             bio = $6, tags = $7, startingpage = $8 WHERE id = $9",
        )
        .bind(&p.gravatar)
        .bind(&p.name)
        .bind(&p.location)
        .bind(&p.timezone)
        .bind(&p.language)
        .bind(&p.bio)
        .bind(&p.tags)
        .bind(&p.startingpage)
        .bind(id)
        .execute(db)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Renames an account; `Ok(false)` when the name is taken.
    pub async fn set_username(&self, id: i64, username: &str) -> Result<bool, CatalogError> {
        let _forget = ForgetKeys(self);
        let sql = "UPDATE users SET username = $1 WHERE id = $2";
        match self.execute2(sql, username, id).await {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e, "users.username") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Switches Home Assistant MQTT discovery on or off for an account.
    pub async fn set_ha_discovery(&self, id: i64, enabled: bool) -> Result<(), CatalogError> {
        let sql = "UPDATE users SET ha_discovery = $1 WHERE id = $2";
        self.execute2(sql, enabled, id).await?;
        Ok(())
    }

    pub async fn ha_discovery(&self, id: i64) -> Result<bool, CatalogError> {
        let sql = "SELECT ha_discovery FROM users WHERE id = $1";
        let row: Option<(bool,)> = self.select_optional(sql, id).await?;
        Ok(row.is_some_and(|(enabled,)| enabled))
    }

    /// Accounts that publish Home Assistant discovery (announced again at start-up).
    pub async fn ha_discovery_users(&self) -> Result<Vec<i64>, CatalogError> {
        Ok(
            on_db!(&self.db, p => sqlx::query_scalar("SELECT id FROM users WHERE ha_discovery ORDER BY id")
                .fetch_all(p)
                .await)?,
        )
    }

    pub async fn set_email(&self, id: i64, email: &str) -> Result<(), CatalogError> {
        let _forget = ForgetKeys(self);
        let sql = "UPDATE users SET email = $1 WHERE id = $2";
        self.execute2(sql, email, id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upgrade of a password's hash after a login does not undo a password change
    /// committed in between.
    #[tokio::test]
    async fn a_hash_upgrade_keeps_a_password_changed_meanwhile() {
        let (_d, cat) = crate::catalog::test_catalog().await;
        let a = crate::catalog::test_user(&cat, "alice").await;
        let old = a.password.clone();
        cat.set_password_hash(a.id, "$changed").await.unwrap();
        assert!(
            !cat.upgrade_password_hash(a.id, &old, "$upgraded")
                .await
                .unwrap()
        );
        let now = cat.user_by_id(a.id).await.unwrap().unwrap();
        assert_eq!(now.password, "$changed");
        assert!(
            cat.upgrade_password_hash(a.id, "$changed", "$upgraded")
                .await
                .unwrap()
        );
    }

    use crate::catalog::test_catalog;

    fn new_user(name: &str) -> NewUser {
        NewUser {
            username: name.into(),
            email: format!("{name}@example.com"),
            password_hash: "$argon2id$placeholder-for-catalog-tests".into(),
            timezone: "UTC".into(),
            admin: false,
        }
    }

    #[tokio::test]
    async fn first_user_is_admin_and_later_ones_are_not() {
        let (_d, cat) = test_catalog().await;
        let a = cat
            .create_user(&new_user("alice"), false)
            .await
            .expect("db")
            .expect("created");
        let b = cat
            .create_user(&new_user("bob"), false)
            .await
            .expect("db")
            .expect("created");
        assert!(a.admin);
        assert!(!b.admin);
        assert_eq!((a.id, b.id), (1, 2));
        assert_ne!(a.apikey_write, a.apikey_read);
        assert_eq!(a.uuid.len(), 36);
        assert_eq!(cat.count_users().await.expect("db"), 2);
    }

    #[tokio::test]
    async fn duplicate_username_is_refused_case_insensitively() {
        let (_d, cat) = test_catalog().await;
        cat.create_user(&new_user("alice"), false)
            .await
            .expect("db")
            .expect("created");
        let r = cat
            .create_user(&new_user("ALICE"), false)
            .await
            .expect("db");
        assert_eq!(r, Err(CreateRefusal::UsernameTaken));
        assert!(cat.username_exists("Alice").await.expect("db"));
    }

    #[tokio::test]
    async fn only_if_first_refuses_second_account() {
        let (_d, cat) = test_catalog().await;
        cat.create_user(&new_user("alice"), true)
            .await
            .expect("db")
            .expect("created");
        let r = cat.create_user(&new_user("bob"), true).await.expect("db");
        assert_eq!(r, Err(CreateRefusal::NotFirstUser));
    }

    #[tokio::test]
    async fn apikey_lookup_and_regeneration() {
        let (_d, cat) = test_catalog().await;
        let a = cat
            .create_user(&new_user("alice"), false)
            .await
            .expect("db")
            .expect("created");
        let (u, kind) = cat
            .user_by_apikey(&a.apikey_read)
            .await
            .expect("db")
            .expect("found");
        assert_eq!((u.id, kind), (a.id, KeyKind::Read));
        let upper = a.apikey_write.to_ascii_uppercase();
        let (_, kind) = cat
            .user_by_apikey(&upper)
            .await
            .expect("db")
            .expect("found");
        assert_eq!(kind, KeyKind::Write);
        let fresh = cat
            .regenerate_apikey(a.id, KeyKind::Write)
            .await
            .expect("db");
        assert!(
            cat.user_by_apikey(&a.apikey_write)
                .await
                .expect("db")
                .is_none()
        );
        assert!(cat.user_by_apikey(&fresh).await.expect("db").is_some());
    }

    #[tokio::test]
    async fn rename_refuses_taken_names() {
        let (_d, cat) = test_catalog().await;
        let a = cat
            .create_user(&new_user("alice"), false)
            .await
            .expect("db")
            .expect("created");
        cat.create_user(&new_user("bob"), false)
            .await
            .expect("db")
            .expect("created");
        assert!(!cat.set_username(a.id, "bob").await.expect("db"));
        assert!(cat.set_username(a.id, "carol").await.expect("db"));
        assert!(cat.user_by_username("carol").await.expect("db").is_some());
    }

    #[tokio::test]
    async fn reopening_keeps_accounts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sqlite");
        let cat = Catalog::open_sqlite(&path).await.expect("open");
        cat.create_user(&new_user("alice"), false)
            .await
            .expect("db")
            .expect("created");
        cat.close().await;
        let cat = Catalog::open_sqlite(&path).await.expect("reopen");
        assert!(cat.user_by_username("alice").await.expect("db").is_some());
    }
}
