//! Usage per user and UTC day (`usage_days`): what the shard workers handled, what existed,
//! and what was refused. Each kind of count has one writer and one way of writing it, so that
//! repeating a write never counts twice:
//!
//! - handled (values received, points written): the shard worker's absolute totals, written
//!   again after each checkpoint ([`Catalog::set_usage_handled`]);
//! - existed (feeds, inputs, bytes): the billing upkeep's snapshot ([`Catalog::set_usage_snapshot`]);
//!   feeds also when one is created or deleted ([`Catalog::note_feeds_held`]), so that a day's
//!   `feeds` is the most the account held at once that day (never lowered within the day),
//!   which the daily accrual charges for;
//! - refusals: added by the node that refused ([`Catalog::add_usage_refusals`]).

use super::on_db;
use super::{Catalog, CatalogError};

/// One user's usage on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageDay {
    pub userid: i64,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub http_values: i64,
    pub mqtt_values: i64,
    pub points: i64,
    pub feeds: i64,
    pub inputs: i64,
    pub bytes: i64,
    pub refusals: i64,
}

/// What a shard handled for one user on one day, as totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Handled {
    pub http_values: i64,
    pub mqtt_values: i64,
    pub points: i64,
}

const COLUMNS: &str =
    "userid, day, http_values, mqtt_values, points, feeds, inputs, bytes, refusals";

impl Catalog {
    /// Sets the handled totals of each (user, day) in one transaction.
    pub async fn set_usage_handled(
        &self,
        rows: &[(i64, String, Handled)],
    ) -> Result<(), CatalogError> {
        if rows.is_empty() {
            return Ok(());
        }
        on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            for (userid, day, h) in rows {
                sqlx::query(
                    // Totals only grow: a write that arrives late (a node whose lease ended
                    // while it waited on the catalog) never takes back the next owner's larger
                    // ones.
                    "INSERT INTO usage_days (userid, day, http_values, mqtt_values, points) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (userid, day) DO UPDATE SET \
                     http_values = CASE WHEN excluded.http_values > usage_days.http_values \
                       THEN excluded.http_values ELSE usage_days.http_values END, \
                     mqtt_values = CASE WHEN excluded.mqtt_values > usage_days.mqtt_values \
                       THEN excluded.mqtt_values ELSE usage_days.mqtt_values END, \
                     points = CASE WHEN excluded.points > usage_days.points \
                       THEN excluded.points ELSE usage_days.points END",
                )
                .bind(userid)
                .bind(day)
                .bind(h.http_values)
                .bind(h.mqtt_values)
                .bind(h.points)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records what `userid` had on `day`.
    pub async fn set_usage_snapshot(
        &self,
        userid: i64,
        day: &str,
        feeds: i64,
        inputs: i64,
        bytes: i64,
    ) -> Result<(), CatalogError> {
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO usage_days (userid, day, feeds, inputs, bytes, feeds_seen) \
             VALUES ($1, $2, $3, $4, $5, 1) \
             ON CONFLICT (userid, day) DO UPDATE SET feeds = CASE \
             WHEN usage_days.feeds_seen = 1 AND usage_days.feeds > excluded.feeds \
             THEN usage_days.feeds ELSE excluded.feeds END, \
             feeds_seen = 1, inputs = excluded.inputs, bytes = excluded.bytes",
        )
        .bind(userid)
        .bind(day)
        .bind(feeds)
        .bind(inputs)
        .bind(bytes)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Raises `userid`'s feeds on `day` to the number of feeds the account has now, if that
    /// is more (called right after a feed is created and right before one is deleted).
    pub async fn note_feeds_held(&self, userid: i64, day: &str) -> Result<(), CatalogError> {
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO usage_days (userid, day, feeds, feeds_seen) \
             SELECT $1, $2, COUNT(*), 1 FROM feeds WHERE userid = $1 \
             ON CONFLICT (userid, day) DO UPDATE SET feeds = CASE \
             WHEN usage_days.feeds_seen = 1 AND usage_days.feeds > excluded.feeds \
             THEN usage_days.feeds ELSE excluded.feeds END, feeds_seen = 1",
        )
        .bind(userid)
        .bind(day)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The days with `from <= day < to` on which `userid`'s feeds were recorded, with the most
    /// feeds held at once on each.
    pub async fn feeds_held(
        &self,
        userid: i64,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, i64)>, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query_as::<_, (String, i64)>(
            "SELECT day, feeds FROM usage_days \
             WHERE userid = $1 AND day >= $2 AND day < $3 AND feeds_seen = 1 ORDER BY day",
        )
        .bind(userid)
        .bind(from)
        .bind(to)
        .fetch_all(p)
        .await)?)
    }

    /// Adds `n` refusals to `userid`'s `day`.
    pub async fn add_usage_refusals(
        &self,
        userid: i64,
        day: &str,
        n: i64,
    ) -> Result<(), CatalogError> {
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO usage_days (userid, day, refusals) VALUES ($1, $2, $3) \
             ON CONFLICT (userid, day) DO UPDATE SET refusals = usage_days.refusals + excluded.refusals",
        )
        .bind(userid)
        .bind(day)
        .bind(n)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// `userid`'s days with `from <= day < to`, in order.
    pub async fn usage_for_user(
        &self,
        userid: i64,
        from: &str,
        to: &str,
    ) -> Result<Vec<UsageDay>, CatalogError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM usage_days WHERE userid = $1 AND day >= $2 AND day < $3 \
             ORDER BY day"
        );
        Ok(
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(userid)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await)?,
        )
    }

    /// Every user's days with `from <= day < to`, by user then day.
    pub async fn usage_between(&self, from: &str, to: &str) -> Result<Vec<UsageDay>, CatalogError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM usage_days WHERE day >= $1 AND day < $2 ORDER BY userid, day"
        );
        Ok(
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{test_catalog, test_user};

    #[tokio::test]
    async fn each_count_is_written_its_own_way() {
        let (_d, cat) = test_catalog().await;
        let u = test_user(&cat, "alice").await;
        let h = Handled {
            http_values: 3,
            mqtt_values: 4,
            points: 5,
        };
        let rows = vec![(u.id, "2026-01-02".to_string(), h)];
        // Written twice (a replay after a crash): the same totals.
        cat.set_usage_handled(&rows).await.unwrap();
        cat.set_usage_handled(&rows).await.unwrap();
        cat.set_usage_snapshot(u.id, "2026-01-02", 2, 7, 4096)
            .await
            .unwrap();
        cat.add_usage_refusals(u.id, "2026-01-02", 2).await.unwrap();
        cat.add_usage_refusals(u.id, "2026-01-02", 1).await.unwrap();
        let days = cat
            .usage_for_user(u.id, "2026-01-01", "2026-02-01")
            .await
            .unwrap();
        assert_eq!(
            days,
            vec![UsageDay {
                userid: u.id,
                day: "2026-01-02".into(),
                http_values: 3,
                mqtt_values: 4,
                points: 5,
                feeds: 2,
                inputs: 7,
                bytes: 4096,
                refusals: 3,
            }]
        );
        assert_eq!(
            cat.usage_between("2026-01-03", "2026-02-01").await.unwrap(),
            vec![]
        );
    }
}
