//! Devices: a key per device, bound to one node of its user (emoncms's device module).

use super::on_db;
use super::{Catalog, CatalogError};
use crate::keys::new_apikey;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: i64,
    pub userid: i64,
    pub nodeid: String,
    pub name: String,
    pub description: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub devicekey: String,
    /// When the device last authenticated.
    pub time: Option<i64>,
}

const COLUMNS: &str = "id, userid, nodeid, name, description, type, devicekey, time";

impl Catalog {
    /// How many devices `userid` has.
    pub async fn device_count(&self, userid: i64) -> Result<i64, CatalogError> {
        let sql = "SELECT COUNT(*) FROM devices WHERE userid = $1";
        Ok(self.select_count(sql, userid).await?)
    }

    /// Creates a device with a new random key; `None` when the user already has a device for
    /// `nodeid`.
    pub async fn create_device(
        &self,
        userid: i64,
        nodeid: &str,
        name: &str,
        description: &str,
        kind: &str,
    ) -> Result<Option<i64>, CatalogError> {
        let key = new_apikey()?;
        Ok(on_db!(&self.db, p => sqlx::query_scalar::<_, i64>(
            "INSERT INTO devices (userid, nodeid, name, description, type, devicekey) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (userid, nodeid) DO NOTHING RETURNING id",
        )
        .bind(userid)
        .bind(nodeid)
        .bind(name)
        .bind(description)
        .bind(kind)
        .bind(key)
        .fetch_optional(p)
        .await)?)
    }

    pub async fn devices_for_user(&self, userid: i64) -> Result<Vec<DeviceRow>, CatalogError> {
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE userid = $1 ORDER BY nodeid, name");
        Ok(self.select_all(sqlx::AssertSqlSafe(sql), userid).await?)
    }

    pub async fn device_by_id(&self, id: i64) -> Result<Option<DeviceRow>, CatalogError> {
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE id = $1");
        Ok(self.select_optional(sqlx::AssertSqlSafe(sql), id).await?)
    }

    /// The device whose key is `key` (any case), noting the time it was used.
    pub async fn device_by_key(&self, key: &str) -> Result<Option<DeviceRow>, CatalogError> {
        let sql = format!("UPDATE devices SET time = $1 WHERE devicekey = $2 RETURNING {COLUMNS}");
        Ok(
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(super::now_secs())
            .bind(key.to_ascii_lowercase())
            .fetch_optional(p)
            .await)?,
        )
    }

    pub async fn delete_device(&self, id: i64) -> Result<(), CatalogError> {
        let sql = "DELETE FROM devices WHERE id = $1";
        self.execute1(sql, id).await?;
        Ok(())
    }

    /// Sets the given fields; `false` when the user has another device for the new node.
    pub async fn set_device_fields(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
        nodeid: Option<&str>,
        kind: Option<&str>,
    ) -> Result<bool, CatalogError> {
        let result = on_db!(&self.db, p => sqlx::query(
            "UPDATE devices SET name = COALESCE($1, name), description = COALESCE($2, description), \
             nodeid = COALESCE($3, nodeid), type = COALESCE($4, type) WHERE id = $5",
        )
        .bind(name)
        .bind(description)
        .bind(nodeid)
        .bind(kind)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()));
        super::unless_unique_clash(result)
    }

    /// Replaces the device's key; the old one stops working at once.
    pub async fn new_device_key(&self, id: i64) -> Result<String, CatalogError> {
        let key = new_apikey()?;
        let sql = "UPDATE devices SET devicekey = $1 WHERE id = $2";
        self.execute2(sql, &key, id).await?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{test_catalog, test_user};

    #[tokio::test]
    async fn a_device_per_node_with_its_own_key() {
        let (_d, cat) = test_catalog().await;
        let u = test_user(&cat, "alice").await;
        let id = cat
            .create_device(u.id, "emontx", "tx", "", "")
            .await
            .expect("db")
            .expect("created");
        assert_eq!(
            cat.create_device(u.id, "emontx", "again", "", "")
                .await
                .expect("db"),
            None
        );
        let d = cat.device_by_id(id).await.expect("db").expect("found");
        assert_eq!(d.devicekey.len(), 32);
        let by_key = cat
            .device_by_key(&d.devicekey.to_ascii_uppercase())
            .await
            .expect("db")
            .expect("found");
        assert_eq!((by_key.id, by_key.nodeid.as_str()), (id, "emontx"));
        assert!(by_key.time.is_some());
        let fresh = cat.new_device_key(id).await.expect("db");
        assert!(cat.device_by_key(&d.devicekey).await.expect("db").is_none());
        assert!(cat.device_by_key(&fresh).await.expect("db").is_some());
        cat.delete_device(id).await.expect("db");
        assert!(cat.devices_for_user(u.id).await.expect("db").is_empty());
    }
}
