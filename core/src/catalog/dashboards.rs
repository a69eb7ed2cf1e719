//! emoncms's dashboard module rows (`dashboards`): every query is scoped to the owner (emoncms's
//! own `delete` is not, which let any write key delete any dashboard).

use super::on_db;
use super::{Catalog, CatalogError};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DashboardRow {
    pub id: i64,
    pub userid: i64,
    pub content: String,
    pub height: i64,
    pub name: String,
    pub alias: String,
    pub description: String,
    pub main: bool,
    pub public: bool,
    pub published: bool,
    pub showdescription: bool,
    pub backgroundcolor: String,
    pub gridsize: i64,
    pub fullscreen: bool,
    pub feedmode: String,
}

/// The settings `dashboard/set` may change (each already filtered by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DashboardFields {
    pub name: Option<String>,
    pub alias: Option<String>,
    pub description: Option<String>,
    pub main: Option<bool>,
    pub public: Option<bool>,
    pub published: Option<bool>,
    pub showdescription: Option<bool>,
    pub backgroundcolor: Option<String>,
    pub gridsize: Option<i64>,
    pub fullscreen: Option<bool>,
    pub feedmode: Option<String>,
}

const COLUMNS: &str = "id, userid, content, height, name, alias, description, main, public, \
     published, showdescription, backgroundcolor, gridsize, fullscreen, feedmode";

/// Every column but the content (left empty): lists and look-ups by alias read many rows and
/// need none of their content.
const LIST_COLUMNS: &str = "id, userid, '' AS content, height, name, alias, description, main, \
     public, published, showdescription, backgroundcolor, gridsize, fullscreen, feedmode";

/// Dashboards one account may have (emoncms has no limit, but each is read by every list).
pub const MAX_DASHBOARDS: i64 = 1_000;

/// The longest content a dashboard stores: emoncms's column is MySQL `TEXT` (65,535 bytes),
/// which refuses more.
pub const MAX_DASHBOARD_CONTENT: usize = 65_535;

impl Catalog {
    /// Imports a dashboard (emoncms's row) under its id where free. The user's own dashboard
    /// under that id is this one imported before: the same content is left alone, other
    /// content is a conflict. Where the id was another's, one of the user's with the same name
    /// and content is this one imported before under a new id. Names are not unique (emoncms
    /// names every new dashboard "No name"), so another of the same name is a new dashboard.
    ///
    /// A dashboard whose id is taken gets one above both `above` (the importer passes the
    /// largest id of the installation it reads) and every id here, so that it cannot take the
    /// id of a dashboard the same import brings later.
    pub async fn import_dashboard(
        &self,
        d: &DashboardRow,
        above: i64,
    ) -> Result<super::Imported, CatalogError> {
        use super::Imported;
        let taken: Option<(i64, String)> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT userid, content FROM dashboards WHERE id = $1",
        )
        .bind(d.id)
        .fetch_optional(p)
        .await)?;
        match &taken {
            Some((userid, content)) if *userid == d.userid => {
                return Ok(if *content == d.content {
                    Imported::Unchanged
                } else {
                    Imported::Conflict(format!(
                        "user {} already has dashboard {} ({:?}) with other content",
                        d.userid, d.id, d.name
                    ))
                });
            }
            Some(_) => {
                let before: Option<(i64,)> = on_db!(&self.db, p => sqlx::query_as(
                    "SELECT id FROM dashboards WHERE userid = $1 AND name = $2 AND content = $3",
                )
                .bind(d.userid)
                .bind(&d.name)
                .bind(&d.content)
                .fetch_optional(p)
                .await)?;
                if before.is_some() {
                    return Ok(Imported::Unchanged);
                }
            }
            None => {}
        }
        // Its own id where free (emoncms's links name dashboards by id), else a new one.
        let id = if taken.is_none() {
            d.id
        } else {
            let max: Option<i64> = on_db!(&self.db, p => sqlx::query_scalar(
                "SELECT MAX(id) FROM dashboards",
            )
            .fetch_one(p)
            .await)?;
            max.unwrap_or(0).max(above) + 1
        };
        on_db!(&self.db, p => {
            sqlx::query(
                "INSERT INTO dashboards (userid, content, height, name, alias, description, main, public, \
                 published, showdescription, backgroundcolor, gridsize, fullscreen, feedmode, id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(d.userid)
            .bind(&d.content)
            .bind(d.height)
            .bind(&d.name)
            .bind(&d.alias)
            .bind(&d.description)
            .bind(d.main)
            .bind(d.public)
            .bind(d.published)
            .bind(d.showdescription)
            .bind(&d.backgroundcolor)
            .bind(d.gridsize)
            .bind(d.fullscreen)
            .bind(&d.feedmode)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())?
        });
        self.follow_explicit_ids(super::import::IdTable::Dashboards)
            .await?;
        Ok(Imported::Created)
    }

    /// A new empty dashboard of `userid`; `None` when they have [`MAX_DASHBOARDS`].
    pub async fn create_dashboard(&self, userid: i64) -> Result<Option<i64>, CatalogError> {
        if self.dashboard_count(userid).await? >= MAX_DASHBOARDS {
            return Ok(None);
        }
        Ok(Some(on_db!(&self.db, p => sqlx::query_scalar::<_, i64>(
            "INSERT INTO dashboards (userid) VALUES ($1) RETURNING id",
        )
        .bind(userid)
        .fetch_one(p)
        .await)?))
    }

    async fn dashboard_count(&self, userid: i64) -> Result<i64, CatalogError> {
        let sql = "SELECT COUNT(*) FROM dashboards WHERE userid = $1";
        Ok(self.select_count(sql, userid).await?)
    }

    /// `userid`'s dashboards without their content (empty here; [`Catalog::dashboard`] reads
    /// one whole).
    pub async fn dashboards_for_user(
        &self,
        userid: i64,
    ) -> Result<Vec<DashboardRow>, CatalogError> {
        let sql = format!("SELECT {LIST_COLUMNS} FROM dashboards WHERE userid = $1 ORDER BY id");
        Ok(self.select_all(sqlx::AssertSqlSafe(sql), userid).await?)
    }

    /// `userid`'s dashboard `id`.
    pub async fn dashboard(
        &self,
        userid: i64,
        id: i64,
    ) -> Result<Option<DashboardRow>, CatalogError> {
        let sql = format!("SELECT {COLUMNS} FROM dashboards WHERE id = $1 AND userid = $2");
        Ok(
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(userid)
            .fetch_optional(p)
            .await)?,
        )
    }

    /// Dashboard `id` whoever owns it: for viewing, where the caller decides who may see it
    /// (its owner, anyone when public, a share link made for it).
    pub async fn dashboard_by_id(&self, id: i64) -> Result<Option<DashboardRow>, CatalogError> {
        let sql = format!("SELECT {COLUMNS} FROM dashboards WHERE id = $1");
        Ok(self.select_optional(sqlx::AssertSqlSafe(sql), id).await?)
    }

    pub async fn delete_dashboard(&self, userid: i64, id: i64) -> Result<bool, CatalogError> {
        // Its links first: a dashboard imported later under the same id must not bring them
        // back.
        let sql = "UPDATE shares SET revoked = TRUE WHERE dashboard = $1 AND userid = $2 \
                   AND kind = 'dashboard'";
        self.execute2(sql, id, userid).await?;
        let sql = "DELETE FROM dashboards WHERE id = $1 AND userid = $2";
        Ok(self.execute2(sql, id, userid).await? > 0)
    }

    /// A copy of `userid`'s dashboard `id` (content, height, description; the name with
    /// " clone"); `None` if it is not theirs or they have [`MAX_DASHBOARDS`].
    pub async fn clone_dashboard(&self, userid: i64, id: i64) -> Result<Option<i64>, CatalogError> {
        if self.dashboard_count(userid).await? >= MAX_DASHBOARDS {
            return Ok(None);
        }
        let Some(d) = self.dashboard(userid, id).await? else {
            return Ok(None);
        };
        Ok(Some(on_db!(&self.db, p => sqlx::query_scalar::<_, i64>(
            "INSERT INTO dashboards (userid, content, height, name, description) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(userid)
        .bind(&d.content)
        .bind(d.height)
        .bind(format!("{} clone", d.name))
        .bind(&d.description)
        .fetch_one(p)
        .await)?))
    }

    /// Sets `userid`'s dashboard `id`'s content and height; false if not theirs.
    pub async fn set_dashboard_content(
        &self,
        userid: i64,
        id: i64,
        content: &str,
        height: i64,
    ) -> Result<bool, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query(
            "UPDATE dashboards SET content = $1, height = $2 WHERE id = $3 AND userid = $4",
        )
        .bind(content)
        .bind(height)
        .bind(id)
        .bind(userid)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?
            > 0)
    }

    /// Sets the given settings of `userid`'s dashboard `id` in one transaction (`main` clears
    /// the user's other dashboards' `main`); false if not theirs.
    pub async fn set_dashboard_fields(
        &self,
        userid: i64,
        id: i64,
        f: &DashboardFields,
    ) -> Result<bool, CatalogError> {
        Ok(on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            let owned: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM dashboards WHERE id = $1 AND userid = $2")
                    .bind(id)
                    .bind(userid)
                    .fetch_optional(&mut *tx)
                    .await?;
            if owned.is_none() {
                false
            } else {
                macro_rules! set {
                    ($col:literal, $v:expr) => {
                        if let Some(v) = $v {
                            sqlx::query(concat!("UPDATE dashboards SET ", $col, " = $1 WHERE id = $2"))
                                .bind(v)
                                .bind(id)
                                .execute(&mut *tx)
                                .await?;
                        }
                    };
                }
                if f.main == Some(true) {
                    sqlx::query("UPDATE dashboards SET main = FALSE WHERE userid = $1 AND id <> $2")
                        .bind(userid)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                set!("name", f.name.clone());
                set!("alias", f.alias.clone());
                set!("description", f.description.clone());
                set!("main", f.main);
                set!("public", f.public);
                set!("published", f.published);
                set!("showdescription", f.showdescription);
                set!("backgroundcolor", f.backgroundcolor.clone());
                set!("gridsize", f.gridsize);
                set!("fullscreen", f.fullscreen);
                set!("feedmode", f.feedmode.clone());
                tx.commit().await?;
                true
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{test_catalog, test_user};

    #[tokio::test]
    async fn imported_dashboards_of_one_name_are_all_kept_and_imported_once() {
        use crate::catalog::Imported;
        let (_d, cat) = test_catalog().await;
        let a = test_user(&cat, "alice").await;
        let b = test_user(&cat, "bobby").await;
        let bobs = cat.create_dashboard(b.id).await.unwrap().expect("created");
        let row = |id: i64, content: &str| DashboardRow {
            id,
            userid: a.id,
            content: content.into(),
            height: 600,
            name: "No name".into(),
            alias: String::new(),
            description: String::new(),
            main: false,
            public: false,
            published: false,
            showdescription: false,
            backgroundcolor: "EDF7FC".into(),
            gridsize: 20,
            fullscreen: false,
            feedmode: "feedid".into(),
        };
        // emoncms names every new dashboard "No name"; one's id is bob's here.
        let rows = [
            row(50, "<p>1</p>"),
            row(51, "<p>2</p>"),
            row(bobs, "<p>3</p>"),
        ];
        for r in &rows {
            assert_eq!(
                cat.import_dashboard(r, 60).await.unwrap(),
                Imported::Created
            );
        }
        for r in &rows {
            assert_eq!(
                cat.import_dashboard(r, 60).await.unwrap(),
                Imported::Unchanged
            );
        }
        let mine = cat.dashboards_for_user(a.id).await.unwrap();
        assert_eq!(mine.len(), 3, "{mine:?}");
        assert!(mine.iter().any(|d| d.id == 50) && mine.iter().any(|d| d.id == 51));
        // The one renumbered is numbered above every id the import reads (60), so one the
        // import brings later (52) keeps its own.
        assert!(mine.iter().any(|d| d.id == 61), "{mine:?}");
        assert_eq!(
            cat.import_dashboard(&row(52, "<p>4</p>"), 60)
                .await
                .unwrap(),
            Imported::Created
        );
        let ids: Vec<i64> = cat
            .dashboards_for_user(a.id)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, [50, 51, 52, 61]);
        let changed = row(51, "<p>edited in emoncms</p>");
        assert!(matches!(
            cat.import_dashboard(&changed, 60).await.unwrap(),
            Imported::Conflict(_)
        ));
    }

    #[tokio::test]
    async fn dashboards_belong_to_their_user() {
        let (_d, cat) = test_catalog().await;
        let a = test_user(&cat, "alice").await;
        let b = test_user(&cat, "bobby").await;
        let d1 = cat.create_dashboard(a.id).await.unwrap().expect("created");
        let d2 = cat.create_dashboard(a.id).await.unwrap().expect("created");
        assert!(!cat.delete_dashboard(b.id, d1).await.unwrap(), "not bob's");
        assert!(!cat.set_dashboard_content(b.id, d1, "x", 1).await.unwrap());
        assert_eq!(cat.clone_dashboard(b.id, d1).await.unwrap(), None);
        assert!(
            cat.set_dashboard_content(a.id, d1, "<div></div>", 300)
                .await
                .unwrap()
        );
        let main = DashboardFields {
            main: Some(true),
            name: Some("House".into()),
            ..Default::default()
        };
        assert!(cat.set_dashboard_fields(a.id, d1, &main).await.unwrap());
        assert!(
            cat.set_dashboard_fields(
                a.id,
                d2,
                &DashboardFields {
                    main: Some(true),
                    ..Default::default()
                }
            )
            .await
            .unwrap()
        );
        let rows = cat.dashboards_for_user(a.id).await.unwrap();
        assert_eq!(
            rows.iter()
                .filter(|d| d.main)
                .map(|d| d.id)
                .collect::<Vec<_>>(),
            vec![d2]
        );
        let c = cat.clone_dashboard(a.id, d1).await.unwrap().unwrap();
        let copy = cat.dashboard(a.id, c).await.unwrap().unwrap();
        assert_eq!(
            (copy.name.as_str(), copy.content.as_str(), copy.height),
            ("House clone", "<div></div>", 300)
        );
        assert!(cat.dashboards_for_user(b.id).await.unwrap().is_empty());
        assert!(
            rows.iter().all(|d| d.content.is_empty()),
            "lists carry no content"
        );
    }

    #[tokio::test]
    async fn an_account_has_at_most_the_limit_of_dashboards() {
        let (_d, cat) = test_catalog().await;
        let a = test_user(&cat, "alice").await;
        let first = cat.create_dashboard(a.id).await.unwrap().expect("created");
        for _ in 1..MAX_DASHBOARDS {
            cat.create_dashboard(a.id).await.unwrap().expect("created");
        }
        assert_eq!(cat.create_dashboard(a.id).await.unwrap(), None);
        assert_eq!(cat.clone_dashboard(a.id, first).await.unwrap(), None);
        assert!(cat.delete_dashboard(a.id, first).await.unwrap());
        assert!(cat.create_dashboard(a.id).await.unwrap().is_some());
    }
}
