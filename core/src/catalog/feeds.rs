//! Feeds: ownership, name, tag, engine and unit. The data is in the engines' files.

use super::on_db;
use super::users::{ForgetKeys, KEY_CACHE_LIMIT};
use super::{Catalog, CatalogError};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FeedRow {
    pub id: i64,
    pub userid: i64,
    pub name: String,
    pub tag: String,
    pub public: bool,
    pub engine: i64,
    pub unit: String,
    /// Virtual feeds only: the list computing their values.
    #[sqlx(rename = "processList")]
    pub process_list: String,
    /// Bytes on disk when last refreshed (`feed/updatesize`, `feed/clear`).
    pub size: i64,
}

/// A feed row whose files are still to be made (see [`Catalog::create_feed_with_files`]).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PendingFiles {
    pub id: i64,
    pub userid: i64,
    pub engine: i64,
    /// The fixed interval the files are to have; 0 for a feed without one.
    #[sqlx(rename = "files_pending")]
    pub interval: i64,
}

const COLUMNS: &str =
    "id, userid, name, tag, public, engine, unit, processList AS \"processList\", size";

impl Catalog {
    /// How many feeds `userid` has.
    pub async fn feed_count(&self, userid: i64) -> Result<i64, CatalogError> {
        let sql = "SELECT COUNT(*) FROM feeds WHERE userid = $1";
        Ok(self.select_count(sql, userid).await?)
    }

    /// Adds a feed row and returns its id; the caller then creates its files.
    pub async fn create_feed(
        &self,
        userid: i64,
        name: &str,
        tag: &str,
        engine: i64,
        unit: &str,
    ) -> Result<i64, CatalogError> {
        self.insert_feed(userid, name, tag, engine, unit, None)
            .await
    }

    /// Adds a feed row whose files are still to be made with `interval` (0 for a feed without
    /// one), and returns its id. Until [`Catalog::feed_files_made`] the row is listed by
    /// [`Catalog::feeds_with_files_pending`], so the shard that owns the account makes the files
    /// when it next opens if a crash came between the row and the files.
    pub async fn create_feed_with_files(
        &self,
        userid: i64,
        name: &str,
        tag: &str,
        engine: i64,
        unit: &str,
        interval: u32,
    ) -> Result<i64, CatalogError> {
        self.insert_feed(userid, name, tag, engine, unit, Some(i64::from(interval)))
            .await
    }

    async fn insert_feed(
        &self,
        userid: i64,
        name: &str,
        tag: &str,
        engine: i64,
        unit: &str,
        files_pending: Option<i64>,
    ) -> Result<i64, CatalogError> {
        let id = on_db!(&self.db, p => sqlx::query_scalar::<_, i64>(
            "INSERT INTO feeds (userid, name, tag, engine, unit, files_pending) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(userid)
        .bind(name)
        .bind(tag)
        .bind(engine)
        .bind(unit)
        .bind(files_pending)
        .fetch_one(p)
        .await)?;
        // A feed held for part of a day is held that day (the daily accrual charges for it).
        self.note_feeds_held(userid, &utc_today()).await?;
        Ok(id)
    }

    pub async fn feeds_for_user(&self, userid: i64) -> Result<Vec<FeedRow>, CatalogError> {
        let sql = format!("SELECT {COLUMNS} FROM feeds WHERE userid = $1 ORDER BY id");
        Ok(self.select_all(sqlx::AssertSqlSafe(sql), userid).await?)
    }

    /// The feed row `id`, remembered once read on SQLite (every graph and value request looks
    /// its feed up; changes go through this handle and empty what it remembers). A cluster's
    /// PostgreSQL catalog is always asked: see `KeyCache::feeds_enabled`.
    pub async fn feed_by_id(&self, id: i64) -> Result<Option<FeedRow>, CatalogError> {
        let generation = {
            let cache = self.keys.read().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.feeds.get(&id) {
                return Ok(Some(hit.clone()));
            }
            cache.generation
        };
        let row = self.feed_row(id).await?;
        // Only rows that exist are remembered, so unknown ids cannot grow the cache.
        if let Some(row) = &row {
            let mut cache = self.keys.write().unwrap_or_else(|p| p.into_inner());
            if cache.generation == generation && cache.enabled && cache.feeds_enabled {
                if cache.feeds.len() >= KEY_CACHE_LIMIT {
                    cache.feeds.clear();
                }
                cache.feeds.insert(id, row.clone());
            }
        }
        Ok(row)
    }

    /// The feed row `id` as the database has it now (for changes made from it).
    async fn feed_row(&self, id: i64) -> Result<Option<FeedRow>, CatalogError> {
        let sql = format!("SELECT {COLUMNS} FROM feeds WHERE id = $1");
        Ok(self.select_optional(sqlx::AssertSqlSafe(sql), id).await?)
    }

    /// The user's feed called `name` (and `tag`, when given): emoncms's `feed/getid`.
    pub async fn feed_id_by_name(
        &self,
        userid: i64,
        name: &str,
        tag: Option<&str>,
    ) -> Result<Option<i64>, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query_scalar::<_, i64>(
            "SELECT id FROM feeds WHERE userid = $1 AND name = $2 AND ($3 IS NULL OR tag = $4) ORDER BY id LIMIT 1",
        )
        .bind(userid)
        .bind(name)
        .bind(tag)
        .bind(tag)
        .fetch_optional(p)
        .await)?)
    }

    /// Public feeds of a user (`feed/list?userid=`).
    pub async fn public_feeds(&self, userid: i64) -> Result<Vec<FeedRow>, CatalogError> {
        let sql = format!("SELECT {COLUMNS} FROM feeds WHERE userid = $1 AND public ORDER BY id");
        Ok(self.select_all(sqlx::AssertSqlSafe(sql), userid).await?)
    }

    pub async fn set_feed_size(&self, id: i64, size: i64) -> Result<(), CatalogError> {
        let _forget = ForgetKeys(self);
        let sql = "UPDATE feeds SET size = $1 WHERE id = $2";
        self.execute2(sql, size, id).await?;
        Ok(())
    }

    pub async fn set_feed_process_list(&self, id: i64, list: &str) -> Result<(), CatalogError> {
        let _forget = ForgetKeys(self);
        let sql = "UPDATE feeds SET processList = $1 WHERE id = $2";
        self.execute2(sql, list, id).await?;
        Ok(())
    }

    /// Sets the given fields of a feed (name, tag, public, unit). Returns `false` when another
    /// feed of the user already has the resulting tag and name (emoncms keeps them unique).
    pub async fn update_feed_fields(
        &self,
        id: i64,
        name: Option<&str>,
        tag: Option<&str>,
        public: Option<bool>,
        unit: Option<&str>,
    ) -> Result<bool, CatalogError> {
        let _forget = ForgetKeys(self);
        let Some(row) = self.feed_row(id).await? else {
            return Ok(false);
        };
        let (name, tag) = (name.unwrap_or(&row.name), tag.unwrap_or(&row.tag));
        let clash = on_db!(&self.db, p => sqlx::query(
            "SELECT 1 AS x FROM feeds WHERE userid = $1 AND name = $2 AND tag = $3 AND id <> $4",
        )
        .bind(row.userid)
        .bind(name)
        .bind(tag)
        .bind(id)
        .fetch_optional(p)
        .await
        .map(|r| r.is_some()))?;
        if clash {
            return Ok(false);
        }
        on_db!(&self.db, p => sqlx::query("UPDATE feeds SET name = $1, tag = $2, public = $3, unit = $4 WHERE id = $5")
            .bind(name)
            .bind(tag)
            .bind(public.unwrap_or(row.public))
            .bind(unit.unwrap_or(&row.unit))
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(true)
    }

    /// The feed's files exist: it is no longer listed as pending.
    pub async fn feed_files_made(&self, id: i64) -> Result<(), CatalogError> {
        let sql = "UPDATE feeds SET files_pending = NULL WHERE id = $1";
        self.execute1(sql, id).await?;
        Ok(())
    }

    /// Whether feed `id`'s row still waits for its files (false for a row that is gone).
    pub async fn feed_files_pending(&self, id: i64) -> Result<bool, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query_scalar::<_, i64>(
            "SELECT id FROM feeds WHERE id = $1 AND files_pending IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(p)
        .await)?
        .is_some())
    }

    /// Feeds whose files may not have been made yet, every account's (normally none: a row is
    /// listed only between feed/create's insert and its files).
    pub async fn feeds_with_files_pending(&self) -> Result<Vec<PendingFiles>, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query_as::<_, PendingFiles>(
            "SELECT id, userid, engine, files_pending FROM feeds WHERE files_pending IS NOT NULL ORDER BY id",
        )
        .fetch_all(p)
        .await)?)
    }

    pub async fn delete_feed_row(&self, id: i64) -> Result<(), CatalogError> {
        let _forget = ForgetKeys(self);
        if let Some(row) = self.feed_row(id).await? {
            self.note_feeds_held(row.userid, &utc_today()).await?;
        }
        let sql = "DELETE FROM feeds WHERE id = $1";
        self.execute1(sql, id).await?;
        Ok(())
    }
}

/// Today's UTC date, `YYYY-MM-DD` (usage days are UTC days).
fn utc_today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

#[cfg(test)]
mod tests {
    use crate::catalog::{test_catalog, test_user};

    #[tokio::test]
    async fn feeds_belong_to_users() {
        let (_d, cat) = test_catalog().await;
        let a = test_user(&cat, "alice").await;
        let b = test_user(&cat, "bob").await;
        let f = cat
            .create_feed(a.id, "power", "house", 5, "W")
            .await
            .expect("create");
        cat.create_feed(b.id, "other", "", 2, "")
            .await
            .expect("create");
        let mine = cat.feeds_for_user(a.id).await.expect("list");
        assert_eq!(mine.len(), 1);
        assert_eq!(
            (mine[0].id, mine[0].engine, mine[0].unit.as_str()),
            (f, 5, "W")
        );
        assert!(!mine[0].public);
        assert_eq!(
            cat.feed_by_id(f).await.expect("get").map(|r| r.userid),
            Some(a.id)
        );
        cat.delete_feed_row(f).await.expect("delete");
        assert!(cat.feed_by_id(f).await.expect("get").is_none());
    }
}
