//! Browser login sessions. The client holds a random token; the catalog holds its SHA-256.

use sha2::{Digest, Sha256};

use super::on_db;
use super::{Catalog, CatalogError, now_secs};
use crate::keys::random_hex;

/// A live session: whose it is and when it ends (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    pub userid: i64,
    pub expires: i64,
}

/// Sessions an account keeps at once; a login past them ends the oldest.
pub const MAX_SESSIONS_PER_USER: i64 = 100;

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Catalog {
    /// Starts a session lasting `ttl_secs` and returns its token (64 hex characters).
    pub async fn create_session(&self, userid: i64, ttl_secs: i64) -> Result<String, CatalogError> {
        let token = random_hex(32)?;
        let now = now_secs();
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO sessions (token_hash, userid, created, expires) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash(&token))
        .bind(userid)
        .bind(now)
        .bind(now + ttl_secs)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        // An account keeps its newest sessions only: logins are not limited when they
        // succeed, and each session lives a month.
        let new = token_hash(&token);
        on_db!(&self.db, p => sqlx::query(
            "DELETE FROM sessions WHERE userid = $1 AND token_hash <> $2 AND token_hash NOT IN \
             (SELECT token_hash FROM sessions WHERE userid = $1 AND token_hash <> $2 \
              ORDER BY created DESC, token_hash LIMIT $3)",
        )
        .bind(userid)
        .bind(&new)
        .bind(MAX_SESSIONS_PER_USER - 1)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(token)
    }

    /// The session behind `token`, if it exists and has not expired.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query_as(
            "SELECT userid, expires FROM sessions WHERE token_hash = $1 AND expires > $2",
        )
        .bind(token_hash(token))
        .bind(now_secs())
        .fetch_optional(p)
        .await)?)
    }

    pub async fn delete_session(&self, token: &str) -> Result<(), CatalogError> {
        let sql = "DELETE FROM sessions WHERE token_hash = $1";
        self.execute1(sql, token_hash(token)).await?;
        Ok(())
    }

    /// Ends every session of `userid` except the one holding `keep` (after a password change,
    /// other browsers must log in again).
    pub async fn delete_other_sessions(&self, userid: i64, keep: &str) -> Result<(), CatalogError> {
        let sql = "DELETE FROM sessions WHERE userid = $1 AND token_hash <> $2";
        self.execute2(sql, userid, token_hash(keep)).await?;
        Ok(())
    }

    /// Removes expired sessions; returns how many.
    pub async fn purge_expired_sessions(&self) -> Result<u64, CatalogError> {
        let sql = "DELETE FROM sessions WHERE expires <= $1";
        Ok(self.execute1(sql, now_secs()).await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{test_catalog, test_user};

    /// An account keeps its newest sessions only, and the one a login just made always.
    #[tokio::test]
    async fn an_account_keeps_its_newest_sessions() {
        let (_d, cat) = test_catalog().await;
        let u = test_user(&cat, "alice").await;
        let mut tokens = Vec::new();
        for _ in 0..super::MAX_SESSIONS_PER_USER + 20 {
            let t = cat.create_session(u.id, 3600).await.expect("db");
            assert!(cat.session(&t).await.expect("db").is_some(), "the new one");
            tokens.push(t);
        }
        let mut live = 0;
        for t in &tokens {
            live += usize::from(cat.session(t).await.expect("db").is_some());
        }
        assert_eq!(live as i64, super::MAX_SESSIONS_PER_USER);
    }

    #[tokio::test]
    async fn session_lifecycle() {
        let (_d, cat) = test_catalog().await;
        let u = test_user(&cat, "alice").await;
        let t1 = cat.create_session(u.id, 3600).await.expect("db");
        let t2 = cat.create_session(u.id, 3600).await.expect("db");
        let expired = cat.create_session(u.id, -1).await.expect("db");
        assert_eq!(t1.len(), 64);
        assert_eq!(
            cat.session(&t1).await.expect("db").map(|s| s.userid),
            Some(u.id)
        );
        assert!(cat.session(&expired).await.expect("db").is_none());
        assert!(cat.session("nonsense").await.expect("db").is_none());
        cat.delete_other_sessions(u.id, &t1).await.expect("db");
        assert!(cat.session(&t2).await.expect("db").is_none());
        assert!(cat.session(&t1).await.expect("db").is_some());
        assert_eq!(cat.purge_expired_sessions().await.expect("db"), 0);
        cat.delete_session(&t1).await.expect("db");
        assert!(cat.session(&t1).await.expect("db").is_none());
    }
}
