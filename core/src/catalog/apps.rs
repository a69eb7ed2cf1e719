//! emoncms's app module rows (`apps`) and read-only share links (`shares`).

use sha2::{Digest, Sha256};

use super::on_db;
use super::{Catalog, CatalogError, now_secs};

/// One app instance of a user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AppRow {
    pub id: i64,
    pub userid: i64,
    /// The app's type (`myelectric`, `mysolarpv`, …).
    pub app: String,
    pub name: String,
    pub public: bool,
    /// A flat JSON object.
    pub config: String,
}

/// A share link as stored (never its token).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ShareRow {
    pub id: i64,
    pub userid: i64,
    pub label: String,
    /// `feeds`, `app` or `dashboard`.
    pub kind: String,
    pub app: Option<i64>,
    pub dashboard: Option<i64>,
    /// `feeds`: comma-separated feed ids.
    pub feeds: String,
    pub created: i64,
    /// Unix seconds; 0 for none.
    pub expires: i64,
    pub revoked: bool,
    /// Its page may be shown in other sites' frames.
    pub embed: bool,
}

/// What a new share link gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareScope {
    Feeds(Vec<i64>),
    App(i64),
    Dashboard(i64),
}

/// A share token's SHA-256, as stored.
pub fn share_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

const APP_COLUMNS: &str = "id, userid, app, name, public, config";
const SHARE_COLUMNS: &str =
    "id, userid, label, kind, app, dashboard, feeds, created, expires, revoked, embed";

/// Apps one account may have (emoncms has no limit; `app/getconfig` without an id reads all
/// of them, each with up to 16 KiB of configuration).
pub const MAX_APPS: i64 = 1_000;

impl Catalog {
    /// How many apps `userid` has.
    pub async fn app_count(&self, userid: i64) -> Result<i64, CatalogError> {
        let sql = "SELECT COUNT(*) FROM apps WHERE userid = $1";
        Ok(self.select_count(sql, userid).await?)
    }

    /// A new app of `userid`; `None` when the user has an app of that name.
    pub async fn create_app(
        &self,
        userid: i64,
        app: &str,
        name: &str,
    ) -> Result<Option<i64>, CatalogError> {
        let inserted = on_db!(&self.db, p => sqlx::query_scalar::<_, i64>(
            "INSERT INTO apps (userid, app, name) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(userid)
        .bind(app)
        .bind(name)
        .fetch_one(p)
        .await);
        match inserted {
            Ok(id) => Ok(Some(id)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `userid`'s apps, by id.
    /// `userid`'s apps without their configs (empty): what a list shows, and up to 1,000
    /// configs of 16 KiB are not read for it.
    pub async fn apps_for_user(&self, userid: i64) -> Result<Vec<AppRow>, CatalogError> {
        let sql = "SELECT id, userid, app, name, public, '' AS config FROM apps \
                   WHERE userid = $1 ORDER BY id";
        Ok(self.select_all(sqlx::AssertSqlSafe(sql), userid).await?)
    }

    /// `userid`'s app named `name`, or their first if none is (emoncms's `getconfig`).
    pub async fn app_by_name_or_first(
        &self,
        userid: i64,
        name: &str,
    ) -> Result<Option<AppRow>, CatalogError> {
        let sql = format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE userid = $1 \
             ORDER BY CASE WHEN name = $2 THEN 0 ELSE 1 END, id LIMIT 1"
        );
        Ok(
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(userid)
            .bind(name)
            .fetch_optional(p)
            .await)?,
        )
    }

    pub async fn app_by_id(&self, id: i64) -> Result<Option<AppRow>, CatalogError> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1");
        Ok(self.select_optional(sqlx::AssertSqlSafe(sql), id).await?)
    }

    /// Removes `userid`'s app `id`; false if the user has no such app.
    pub async fn delete_app(&self, userid: i64, id: i64) -> Result<bool, CatalogError> {
        // Its links first: an app imported later under the same id must not bring them back.
        let sql = "UPDATE shares SET revoked = TRUE WHERE app = $1 AND userid = $2 \
                   AND kind = 'app'";
        self.execute2(sql, id, userid).await?;
        let sql = "DELETE FROM apps WHERE id = $1 AND userid = $2";
        Ok(self.execute2(sql, id, userid).await? > 0)
    }

    /// Renames `userid`'s app `id`; `Ok(false)` if the user has no such app, `Err` on a name
    /// another of their apps has (a unique clash).
    pub async fn set_app_name(
        &self,
        userid: i64,
        id: i64,
        name: &str,
    ) -> Result<Option<bool>, CatalogError> {
        let changed = on_db!(&self.db, p => sqlx::query(
            "UPDATE apps SET name = $1 WHERE id = $2 AND userid = $3",
        )
        .bind(name)
        .bind(id)
        .bind(userid)
        .execute(p)
        .await
        .map(|r| r.rows_affected()));
        match changed {
            Ok(n) => Ok(Some(n > 0)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn set_app_public(
        &self,
        userid: i64,
        id: i64,
        public: bool,
    ) -> Result<bool, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query(
            "UPDATE apps SET public = $1 WHERE id = $2 AND userid = $3",
        )
        .bind(public)
        .bind(id)
        .bind(userid)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?
            > 0)
    }

    pub async fn set_app_config(
        &self,
        userid: i64,
        id: i64,
        config: &str,
    ) -> Result<bool, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query(
            "UPDATE apps SET config = $1 WHERE id = $2 AND userid = $3",
        )
        .bind(config)
        .bind(id)
        .bind(userid)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?
            > 0)
    }

    /// Imports an app (emoncms's `app` row) under its id where free. An app of the same name
    /// with the same type and configuration is left alone; one that differs is a conflict.
    pub async fn import_app(&self, a: &AppRow) -> Result<super::Imported, CatalogError> {
        use super::Imported;
        let existing: Option<AppRow> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT id, userid, app, name, public, config FROM apps WHERE userid = $1 AND name = $2",
        )
        .bind(a.userid)
        .bind(&a.name)
        .fetch_optional(p)
        .await)?;
        if let Some(e) = existing {
            // The same source gives the same text: what an earlier import stored.
            let same_config = e.config == a.config;
            return Ok(if e.app == a.app && same_config {
                Imported::Unchanged
            } else {
                Imported::Conflict(format!(
                    "user {} already has an app named {:?} of another type or configuration",
                    a.userid, a.name
                ))
            });
        }
        let id_taken = self.app_by_id(a.id).await?.is_some();
        on_db!(&self.db, p => {
            if id_taken {
                sqlx::query("INSERT INTO apps (userid, app, name, public, config) VALUES ($1, $2, $3, $4, $5)")
                    .bind(a.userid).bind(&a.app).bind(&a.name).bind(a.public).bind(&a.config)
                    .execute(p).await.map(|r| r.rows_affected())?
            } else {
                sqlx::query("INSERT INTO apps (id, userid, app, name, public, config) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(a.id).bind(a.userid).bind(&a.app).bind(&a.name).bind(a.public).bind(&a.config)
                    .execute(p).await.map(|r| r.rows_affected())?
            }
        });
        if !id_taken {
            self.follow_explicit_ids(super::import::IdTable::Apps)
                .await?;
        }
        Ok(Imported::Created)
    }

    /// Stores a share link whose token hashes to `token_hash`; returns its id.
    pub async fn create_share(
        &self,
        userid: i64,
        token_hash: &str,
        label: &str,
        scope: &ShareScope,
        expires: i64,
        embed: bool,
    ) -> Result<i64, CatalogError> {
        let (kind, app, dashboard, feeds) = match scope {
            ShareScope::Feeds(ids) => (
                "feeds",
                None,
                None,
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
            ),
            ShareScope::App(id) => ("app", Some(*id), None, String::new()),
            ShareScope::Dashboard(id) => ("dashboard", None, Some(*id), String::new()),
        };
        Ok(on_db!(&self.db, p => sqlx::query_scalar::<_, i64>(
            "INSERT INTO shares (userid, token_hash, label, kind, app, dashboard, feeds, created, \
             expires, embed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(userid)
        .bind(token_hash)
        .bind(label)
        .bind(kind)
        .bind(app)
        .bind(dashboard)
        .bind(feeds)
        .bind(now_secs())
        .bind(expires)
        .bind(embed)
        .fetch_one(p)
        .await)?)
    }

    pub async fn shares_for_user(&self, userid: i64) -> Result<Vec<ShareRow>, CatalogError> {
        let sql = format!("SELECT {SHARE_COLUMNS} FROM shares WHERE userid = $1 ORDER BY id");
        Ok(self.select_all(sqlx::AssertSqlSafe(sql), userid).await?)
    }

    /// The share link whose token hashes to `token_hash`, whatever its state.
    pub async fn share_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ShareRow>, CatalogError> {
        let sql = format!("SELECT {SHARE_COLUMNS} FROM shares WHERE token_hash = $1");
        Ok(self
            .select_optional(sqlx::AssertSqlSafe(sql), token_hash)
            .await?)
    }

    /// How many of `userid`'s share links are neither revoked nor expired at `now`.
    pub async fn live_share_count(&self, userid: i64, now: i64) -> Result<i64, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM shares WHERE userid = $1 AND NOT revoked \
             AND (expires = 0 OR expires > $2)",
        )
        .bind(userid)
        .bind(now)
        .fetch_one(p)
        .await)?)
    }

    /// Forgets `userid`'s dead share links (revoked, or expired by `now`) but the newest
    /// `keep` (their list stays short: expired links are not counted against the cap of live
    /// ones, so without this a key in a loop made short-lived links without end).
    pub async fn forget_old_dead_shares(
        &self,
        userid: i64,
        keep: i64,
        now: i64,
    ) -> Result<(), CatalogError> {
        on_db!(&self.db, p => sqlx::query(
            "DELETE FROM shares WHERE userid = $1 \
             AND (revoked OR (expires <> 0 AND expires <= $3)) AND id NOT IN \
             (SELECT id FROM shares WHERE userid = $1 \
              AND (revoked OR (expires <> 0 AND expires <= $3)) ORDER BY id DESC LIMIT $2)",
        )
        .bind(userid)
        .bind(keep)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Revokes `userid`'s share link `id`; false if the user has no such link.
    pub async fn revoke_share(&self, userid: i64, id: i64) -> Result<bool, CatalogError> {
        let sql = "UPDATE shares SET revoked = TRUE WHERE id = $1 AND userid = $2";
        Ok(self.execute2(sql, id, userid).await? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{test_catalog, test_user};

    #[tokio::test]
    async fn apps_and_share_links_belong_to_their_user() {
        let (_d, cat) = test_catalog().await;
        let a = test_user(&cat, "alice").await;
        let b = test_user(&cat, "bobby").await;
        let id = cat
            .create_app(a.id, "myelectric", "My Electric")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            cat.create_app(a.id, "mysolarpv", "My Electric")
                .await
                .unwrap(),
            None
        );
        assert!(
            cat.create_app(b.id, "myelectric", "My Electric")
                .await
                .unwrap()
                .is_some()
        );
        assert!(!cat.delete_app(b.id, id).await.unwrap(), "not bob's");
        assert!(!cat.set_app_config(b.id, id, "{}").await.unwrap());
        assert!(cat.set_app_config(a.id, id, r#"{"use":1}"#).await.unwrap());
        assert!(cat.set_app_public(a.id, id, true).await.unwrap());
        let row = cat.app_by_id(id).await.unwrap().unwrap();
        assert_eq!((row.public, row.config.as_str()), (true, r#"{"use":1}"#));
        let s = cat
            .create_share(
                a.id,
                &share_token_hash("t"),
                "x",
                &ShareScope::Feeds(vec![3, 4]),
                0,
                false,
            )
            .await
            .unwrap();
        assert!(!cat.revoke_share(b.id, s).await.unwrap(), "not bob's");
        let got = cat
            .share_by_token_hash(&share_token_hash("t"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.feeds.as_str(), got.revoked), ("3,4", false));
        assert!(cat.revoke_share(a.id, s).await.unwrap());
        assert!(
            cat.share_by_token_hash(&share_token_hash("t"))
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
        assert!(cat.delete_app(a.id, id).await.unwrap());
    }

    /// Expired links are forgotten like revoked ones (past the newest `keep`), and deleting
    /// a dashboard revokes its links.
    #[tokio::test]
    async fn expired_links_are_pruned_and_a_deleted_dashboards_links_revoked() {
        let (_d, cat) = test_catalog().await;
        let a = test_user(&cat, "alice").await;
        for i in 0..5 {
            cat.create_share(
                a.id,
                &share_token_hash(&format!("e{i}")),
                "",
                &ShareScope::Feeds(vec![1]),
                100,
                false,
            )
            .await
            .unwrap();
        }
        cat.forget_old_dead_shares(a.id, 2, 200).await.unwrap();
        assert_eq!(cat.shares_for_user(a.id).await.unwrap().len(), 2);
        let dash = cat.create_dashboard(a.id).await.unwrap().expect("made");
        let link = cat
            .create_share(
                a.id,
                &share_token_hash("d"),
                "",
                &ShareScope::Dashboard(dash),
                0,
                false,
            )
            .await
            .unwrap();
        assert!(cat.delete_dashboard(a.id, dash).await.unwrap());
        let row = cat
            .shares_for_user(a.id)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.id == link)
            .expect("listed");
        assert!(row.revoked, "{row:?}");
    }

    #[tokio::test]
    async fn only_the_newest_revoked_links_are_kept_and_live_ones_counted() {
        let (_d, cat) = test_catalog().await;
        let a = test_user(&cat, "alice").await;
        let b = test_user(&cat, "bobby").await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let id = cat
                .create_share(
                    a.id,
                    &share_token_hash(&format!("t{i}")),
                    "",
                    &ShareScope::Feeds(vec![1]),
                    0,
                    false,
                )
                .await
                .unwrap();
            ids.push(id);
        }
        let bobs = cat
            .create_share(
                b.id,
                &share_token_hash("b"),
                "",
                &ShareScope::Feeds(vec![2]),
                0,
                false,
            )
            .await
            .unwrap();
        assert!(cat.revoke_share(b.id, bobs).await.unwrap());
        for id in &ids[..4] {
            assert!(cat.revoke_share(a.id, *id).await.unwrap());
        }
        assert_eq!(cat.live_share_count(a.id, 0).await.unwrap(), 1);
        // A link past its expiry is not live either.
        let ends = cat
            .create_share(
                a.id,
                &share_token_hash("e"),
                "",
                &ShareScope::Feeds(vec![1]),
                100,
                false,
            )
            .await
            .unwrap();
        assert_eq!(cat.live_share_count(a.id, 99).await.unwrap(), 2);
        assert_eq!(cat.live_share_count(a.id, 100).await.unwrap(), 1);
        assert!(cat.revoke_share(a.id, ends).await.unwrap());
        cat.forget_old_dead_shares(a.id, 2, 99).await.unwrap();
        let left: Vec<i64> = cat
            .shares_for_user(a.id)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(left, vec![ids[3], ids[4], ends]);
        assert_eq!(
            cat.shares_for_user(b.id).await.unwrap().len(),
            1,
            "bob's untouched"
        );
    }
}
