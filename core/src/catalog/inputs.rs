//! Inputs: identity (user, node, name), description and process list.

use super::on_db;
use super::{Catalog, CatalogError};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InputRow {
    pub id: i64,
    pub userid: i64,
    pub nodeid: String,
    pub name: String,
    pub description: String,
    #[sqlx(rename = "processList")]
    pub process_list: String,
}

/// Creates the input unless it exists and returns its row, in one statement: the conflict
/// branch's no-op update makes `RETURNING` give the existing row too.
const INSERT_OR_GET_INPUT: &str = "INSERT INTO inputs (userid, nodeid, name) VALUES ($1, $2, $3) \
     ON CONFLICT (userid, nodeid, name) DO UPDATE SET name = excluded.name \
     RETURNING id, userid, nodeid, name, description, processList AS \"processList\"";

impl Catalog {
    pub async fn inputs_for_user(&self, userid: i64) -> Result<Vec<InputRow>, CatalogError> {
        let sql = "SELECT id, userid, nodeid, name, description, processList AS \"processList\" \
                   FROM inputs WHERE userid = $1 ORDER BY id";
        Ok(self.select_all(sql, userid).await?)
    }

    /// `userid`'s input `id`, if theirs.
    pub async fn input_of(&self, userid: i64, id: i64) -> Result<Option<InputRow>, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query_as(
            "SELECT id, userid, nodeid, name, description, processList AS \"processList\" \
             FROM inputs WHERE id = $1 AND userid = $2",
        )
        .bind(id)
        .bind(userid)
        .fetch_optional(p)
        .await)?)
    }

    /// Creates the input, or returns the existing one with the same identity (a retried batch
    /// must not duplicate inputs).
    pub async fn create_input(
        &self,
        userid: i64,
        nodeid: &str,
        name: &str,
    ) -> Result<InputRow, CatalogError> {
        Ok(on_db!(&self.db, p => sqlx::query_as(INSERT_OR_GET_INPUT)
            .bind(userid)
            .bind(nodeid)
            .bind(name)
            .fetch_one(p)
            .await)?)
    }

    /// Creates several inputs of one user in one transaction and returns their rows in the
    /// order of `keys` (node, name), the existing row where an input was already there. One
    /// commit, one sync, for all of them: one per input made a post naming 100,000 new inputs
    /// take 51 s.
    pub async fn create_inputs(
        &self,
        userid: i64,
        keys: &[(String, String)],
    ) -> Result<Vec<InputRow>, CatalogError> {
        Ok(on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            let mut rows = Vec::with_capacity(keys.len());
            for (nodeid, name) in keys {
                let row: InputRow = sqlx::query_as(INSERT_OR_GET_INPUT)
                    .bind(userid)
                    .bind(nodeid)
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                rows.push(row);
            }
            tx.commit().await?;
            rows
        }))
    }

    pub async fn set_input_process_list(&self, id: i64, list: &str) -> Result<(), CatalogError> {
        let sql = "UPDATE inputs SET processList = $1 WHERE id = $2";
        self.execute2(sql, list, id).await?;
        Ok(())
    }

    /// Replaces input `id`'s list with `list` only if it is still `was`; false if it changed.
    pub async fn replace_input_process_list(
        &self,
        id: i64,
        was: &str,
        list: &str,
    ) -> Result<bool, CatalogError> {
        let changed = on_db!(&self.db, p => sqlx::query(
            "UPDATE inputs SET processList = $1 WHERE id = $2 AND processList = $3",
        )
        .bind(list)
        .bind(id)
        .bind(was)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(changed > 0)
    }

    /// Whether the user switched automatic input creation off.
    pub async fn input_creation_disabled(&self, userid: i64) -> Result<bool, CatalogError> {
        let sql = "SELECT userid FROM input_disable WHERE userid = $1";
        let found: Option<(i64,)> = self.select_optional(sql, userid).await?;
        Ok(found.is_some())
    }

    /// Switches automatic input creation off (`disabled`) or on for a user.
    pub async fn set_input_creation_disabled(
        &self,
        userid: i64,
        disabled: bool,
        now: i64,
    ) -> Result<(), CatalogError> {
        if disabled {
            let sql = "INSERT INTO input_disable (userid, time) VALUES ($1, $2) \
                       ON CONFLICT (userid) DO UPDATE SET time = excluded.time";
            self.execute2(sql, userid, now).await?;
        } else {
            let sql = "DELETE FROM input_disable WHERE userid = $1";
            self.execute1(sql, userid).await?;
        }
        Ok(())
    }

    /// Renames an input and/or sets its description. `false` when another input of the node
    /// already has the name.
    pub async fn set_input_fields(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<bool, CatalogError> {
        let result = on_db!(&self.db, p => sqlx::query(
            "UPDATE inputs SET name = COALESCE($1, name), description = COALESCE($2, description) WHERE id = $3",
        )
        .bind(name)
        .bind(description)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()));
        super::unless_unique_clash(result)
    }

    /// Deletes the user's inputs among `ids`; returns how many went.
    pub async fn delete_inputs(&self, userid: i64, ids: &[i64]) -> Result<u64, CatalogError> {
        Ok(on_db!(&self.db, p => {
            let mut n = 0;
            let mut tx = p.begin().await?;
            for id in ids {
                n += sqlx::query("DELETE FROM inputs WHERE id = $1 AND userid = $2")
                    .bind(id)
                    .bind(userid)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            n
        }))
    }

    /// Deletes the user's inputs that have no process list (`input/clean`).
    pub async fn delete_unprocessed_inputs(&self, userid: i64) -> Result<u64, CatalogError> {
        let sql = "DELETE FROM inputs WHERE userid = $1 AND processList = ''";
        Ok(self.execute1(sql, userid).await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{test_catalog, test_user};

    /// A list is replaced only if it is still the one the caller saw.
    #[tokio::test]
    async fn a_list_is_replaced_only_if_unchanged() {
        let (_d, cat) = test_catalog().await;
        let a = test_user(&cat, "alice").await;
        let input = cat.create_input(a.id, "n", "x").await.expect("create");
        cat.set_input_process_list(input.id, "1:1,52:1")
            .await
            .expect("set");
        // Its owner saved another meanwhile: left alone.
        cat.set_input_process_list(input.id, "1:1")
            .await
            .expect("set");
        assert!(
            !cat.replace_input_process_list(input.id, "1:1,52:1", "x:1,52:1")
                .await
                .expect("db")
        );
        assert!(
            cat.replace_input_process_list(input.id, "1:1", "process__error_found:0,1:1")
                .await
                .expect("db")
        );
        let row = cat
            .input_of(a.id, input.id)
            .await
            .expect("db")
            .expect("row");
        assert_eq!(row.process_list, "process__error_found:0,1:1");
    }

    #[tokio::test]
    async fn inputs_are_unique_per_user_node_and_name() {
        let (_d, cat) = test_catalog().await;
        let u = test_user(&cat, "alice").await;
        let a = cat
            .create_input(u.id, "emontx", "power1")
            .await
            .expect("create");
        let again = cat
            .create_input(u.id, "emontx", "power1")
            .await
            .expect("create");
        assert_eq!(a, again);
        let b = cat
            .create_input(u.id, "emontx", "power2")
            .await
            .expect("create");
        assert_ne!(a.id, b.id);
        cat.set_input_process_list(a.id, "1:1").await.expect("set");
        let all = cat.inputs_for_user(u.id).await.expect("list");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].process_list, "1:1");
        assert!(!cat.input_creation_disabled(u.id).await.expect("db"));
    }

    #[tokio::test]
    async fn many_inputs_are_created_in_one_transaction() {
        let (_d, cat) = test_catalog().await;
        let u = test_user(&cat, "alice").await;
        let old = cat.create_input(u.id, "n", "k5").await.expect("create");
        let keys: Vec<(String, String)> = (0..2000)
            .map(|i| ("n".to_string(), format!("k{i}")))
            .collect();
        let rows = cat.create_inputs(u.id, &keys).await.expect("create");
        assert_eq!(rows.len(), 2000);
        for (row, (node, name)) in rows.iter().zip(&keys) {
            assert_eq!((&row.nodeid, &row.name), (node, name));
        }
        assert_eq!(
            rows[5], old,
            "an existing input is returned, not duplicated"
        );
        assert_eq!(cat.inputs_for_user(u.id).await.expect("list").len(), 2000);
        assert!(
            cat.create_inputs(u.id, &[])
                .await
                .expect("nothing")
                .is_empty()
        );
    }
}
