//! Reading an emoncms 11.x database (MySQL or MariaDB, 5.7 and later). Numbers are cast on the
//! server (`CAST(… AS SIGNED)`, `+ 0.0` for doubles) so column types that differ between
//! emoncms versions (INT or INT UNSIGNED, FLOAT or DOUBLE) decode the same way.

use anyhow::Context;
use sqlx::Row;
use sqlx::mysql::MySqlPool;
use ynni_core::{DeviceRow, FeedRow, ImportedUser, InputRow};

/// A (time, value) last value as emoncms's tables have it.
pub type Last = (i64, Option<f64>);

/// The accounts to import: all, or those named (case-insensitively).
pub async fn users(db: &MySqlPool, wanted: &[String]) -> anyhow::Result<Vec<ImportedUser>> {
    let rows = sqlx::query(
        "SELECT CAST(id AS SIGNED) AS id, COALESCE(username,'') AS username, COALESCE(email,'') AS email, \
         COALESCE(password,'') AS password, COALESCE(salt,'') AS salt, COALESCE(apikey_write,'') AS apikey_write, \
         COALESCE(apikey_read,'') AS apikey_read, CAST(COALESCE(admin,0) AS SIGNED) AS admin, \
         COALESCE(timezone,'UTC') AS timezone FROM users ORDER BY id",
    )
    .fetch_all(db)
    .await
    .context("reading emoncms's users table")?;
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "all");
    let mut out = Vec::new();
    for r in rows {
        let u = ImportedUser {
            id: r.try_get("id")?,
            username: r.try_get("username")?,
            email: r.try_get("email")?,
            password: r.try_get("password")?,
            salt: r.try_get("salt")?,
            apikey_write: r.try_get("apikey_write")?,
            apikey_read: r.try_get("apikey_read")?,
            admin: r.try_get::<i64, _>("admin")? != 0,
            timezone: r.try_get("timezone")?,
        };
        if all || wanted.iter().any(|w| w.eq_ignore_ascii_case(&u.username)) {
            out.push(u);
        }
    }
    Ok(out)
}

/// A user's feeds, each with its last value from the `feeds` table where it has one.
pub async fn feeds(db: &MySqlPool, userid: i64) -> anyhow::Result<Vec<(FeedRow, Option<Last>)>> {
    let rows = sqlx::query(
        "SELECT CAST(id AS SIGNED) AS id, CAST(userid AS SIGNED) AS userid, COALESCE(name,'') AS name, \
         COALESCE(tag,'') AS tag, CAST(COALESCE(public,0) AS SIGNED) AS public, \
         CAST(COALESCE(engine,0) AS SIGNED) AS engine, COALESCE(unit,'') AS unit, \
         COALESCE(processList,'') AS processList, CAST(COALESCE(size,0) AS SIGNED) AS size, \
         CAST(time AS SIGNED) AS time, value + 0.0 AS value FROM feeds WHERE userid = ? ORDER BY id",
    )
    .bind(userid)
    .fetch_all(db)
    .await
    .context("reading emoncms's feeds table")?;
    rows.iter()
        .map(|r| {
            let time: Option<i64> = r.try_get("time")?;
            let value: Option<f64> = r.try_get("value")?;
            let row = FeedRow {
                id: r.try_get("id")?,
                userid: r.try_get("userid")?,
                name: r.try_get("name")?,
                tag: r.try_get("tag")?,
                public: r.try_get::<i64, _>("public")? != 0,
                engine: r.try_get("engine")?,
                unit: r.try_get("unit")?,
                process_list: r.try_get("processList")?,
                size: r.try_get("size")?,
            };
            Ok((row, time.filter(|t| *t > 0).map(|t| (t, value))))
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("decoding a feeds row")
}

/// A user's inputs, each with its last value where the `input` table has one (with Redis on,
/// these columns lag behind; they are what there is).
pub async fn inputs(db: &MySqlPool, userid: i64) -> anyhow::Result<Vec<(InputRow, Option<Last>)>> {
    let rows = sqlx::query(
        "SELECT CAST(id AS SIGNED) AS id, CAST(userid AS SIGNED) AS userid, COALESCE(nodeid,'') AS nodeid, \
         COALESCE(name,'') AS name, COALESCE(description,'') AS description, \
         COALESCE(processList,'') AS processList, CAST(time AS SIGNED) AS time, \
         value + 0.0 AS value FROM input WHERE userid = ? ORDER BY id",
    )
    .bind(userid)
    .fetch_all(db)
    .await
    .context("reading emoncms's input table")?;
    rows.iter()
        .map(|r| {
            let time: Option<i64> = r.try_get("time")?;
            // A FLOAT column: keep the value as FLOAT printed it (0.1, not 0.10000000149).
            let value: Option<f64> = r
                .try_get::<Option<f64>, _>("value")?
                .map(|v| (v as f32).to_string().parse().unwrap_or(v));
            let row = InputRow {
                id: r.try_get("id")?,
                userid: r.try_get("userid")?,
                nodeid: r.try_get("nodeid")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                process_list: r.try_get("processList")?,
            };
            Ok((row, time.filter(|t| *t > 0).map(|t| (t, value))))
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("decoding an input row")
}

/// A user's devices (emoncms's device module) with their keys; none when the module's table
/// does not exist (installations without it).
pub async fn devices(db: &MySqlPool, userid: i64) -> anyhow::Result<Vec<DeviceRow>> {
    let rows = module_rows(
        db,
        "SELECT CAST(id AS SIGNED) AS id, CAST(userid AS SIGNED) AS userid, COALESCE(nodeid,'') AS nodeid, \
         COALESCE(name,'') AS name, COALESCE(description,'') AS description, COALESCE(type,'') AS type, \
         COALESCE(devicekey,'') AS devicekey FROM device WHERE userid = ? ORDER BY id",

        userid,
        "device",
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeviceRow {
                id: r.try_get("id")?,
                userid: r.try_get("userid")?,
                nodeid: r.try_get("nodeid")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                kind: r.try_get("type")?,
                devicekey: r.try_get("devicekey")?,
                time: None,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("decoding a device row")
}

/// A user's apps (emoncms's app module); none when the module's table does not exist.
pub async fn apps(db: &MySqlPool, userid: i64) -> anyhow::Result<Vec<ynni_core::catalog::AppRow>> {
    let rows = module_rows(
        db,
        "SELECT CAST(id AS SIGNED) AS id, CAST(userid AS SIGNED) AS userid, COALESCE(app,'') AS app, \
         COALESCE(name,'') AS name, CAST(COALESCE(public,0) AS SIGNED) AS public, \
         COALESCE(config,'{}') AS config FROM app WHERE userid = ? ORDER BY id",

        userid,
        "app",
    )
    .await?;
    rows.iter()
        .map(|r| {
            let public: i64 = r.try_get("public")?;
            let config: String = r.try_get("config")?;
            Ok(ynni_core::catalog::AppRow {
                id: r.try_get("id")?,
                userid: r.try_get("userid")?,
                app: r.try_get("app")?,
                name: r.try_get("name")?,
                public: public != 0,
                // An empty config is emoncms's `{}`.
                config: if config.trim().is_empty() {
                    "{}".into()
                } else {
                    config
                },
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("decoding an app row")
}

/// A user's dashboards (emoncms's dashboard module); none when the module's table does not
/// exist.
pub async fn dashboards(
    db: &MySqlPool,
    userid: i64,
) -> anyhow::Result<Vec<ynni_core::catalog::DashboardRow>> {
    let rows = module_rows(
        db,
        "SELECT CAST(id AS SIGNED) AS id, CAST(userid AS SIGNED) AS userid, COALESCE(content,'') AS content, \
         CAST(COALESCE(height,600) AS SIGNED) AS height, COALESCE(name,'no name') AS name, \
         COALESCE(alias,'') AS alias, COALESCE(description,'') AS description, \
         CAST(COALESCE(main,0) AS SIGNED) AS main, CAST(COALESCE(public,0) AS SIGNED) AS public, \
         CAST(COALESCE(published,0) AS SIGNED) AS published, \
         CAST(COALESCE(showdescription,0) AS SIGNED) AS showdescription, \
         COALESCE(backgroundcolor,'EDF7FC') AS backgroundcolor, \
         CAST(COALESCE(gridsize,20) AS SIGNED) AS gridsize, \
         CAST(COALESCE(fullscreen,0) AS SIGNED) AS fullscreen, COALESCE(feedmode,'feedid') AS feedmode \
         FROM dashboard WHERE userid = ? ORDER BY id",

        userid,
        "dashboard",
    )
    .await?;
    rows.iter()
        .map(|r| {
            let flag = |k: &str| r.try_get::<i64, _>(k).map(|v| v != 0);
            Ok(ynni_core::catalog::DashboardRow {
                id: r.try_get("id")?,
                userid: r.try_get("userid")?,
                content: r.try_get("content")?,
                height: r.try_get("height")?,
                name: r.try_get("name")?,
                alias: r.try_get("alias")?,
                description: r.try_get("description")?,
                main: flag("main")?,
                public: flag("public")?,
                published: flag("published")?,
                showdescription: flag("showdescription")?,
                backgroundcolor: r.try_get("backgroundcolor")?,
                gridsize: r.try_get("gridsize")?,
                fullscreen: flag("fullscreen")?,
                feedmode: r.try_get("feedmode")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("decoding a dashboard row")
}

/// A user's rows of an optional emoncms module's table (`sql` binds the user id): none when the
/// module, so its table, is not installed.
/// The largest dashboard id of the whole installation (0 with none, or no dashboard module):
/// dashboards given new ids here are numbered above it, so that none takes an id another
/// dashboard of the same import still has to keep.
pub async fn max_dashboard_id(db: &MySqlPool) -> anyhow::Result<i64> {
    match sqlx::query_scalar::<_, Option<i64>>("SELECT CAST(MAX(id) AS SIGNED) FROM dashboard")
        .fetch_one(db)
        .await
    {
        Ok(max) => Ok(max.unwrap_or(0)),
        // SQLSTATE 42S02: no such table.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42S02") => Ok(0),
        Err(e) => Err(e).context("reading emoncms's dashboard table"),
    }
}

async fn module_rows(
    db: &MySqlPool,
    sql: &'static str,
    userid: i64,
    table: &str,
) -> anyhow::Result<Vec<sqlx::mysql::MySqlRow>> {
    match sqlx::query(sql).bind(userid).fetch_all(db).await {
        Ok(rows) => Ok(rows),
        // SQLSTATE 42S02: no such table.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42S02") => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading emoncms's {table} table")),
    }
}
