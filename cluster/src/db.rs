//! The cluster's Postgres: connecting, with the setting named when it fails, and the schema.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::ClusterError;

static MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The cluster's schema history lives apart from the catalog's (sqlx's default table), which
/// shares the database: each would otherwise take the other's version 1 for a modified copy
/// of its own.
const MIGRATIONS_TABLE: &str = "_ynni_cluster_migrations";

/// Connects to `url` (the `cluster.postgres` setting) and brings the cluster tables up to
/// date. Fails within `timeout` when the server cannot be reached.
pub async fn connect(url: &str, timeout: Duration) -> Result<PgPool, ClusterError> {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(timeout)
        .connect(url)
        .await
        .map_err(|e| ClusterError::Setting {
            key: "cluster.postgres",
            reason: format!("cannot be reached: {e}"),
        })?;
    let mut migrator = Migrator::with_migrations(MIGRATIONS.iter().cloned().collect());
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
        .run(&pool)
        .await
        .map_err(|e| ClusterError::Database {
            what: "creating the cluster tables",
            source: e.into(),
        })?;
    Ok(pool)
}
