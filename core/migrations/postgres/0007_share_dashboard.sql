-- A share link may open one dashboard: migrations/sqlite/0014_share_dashboard.sql.
ALTER TABLE shares ADD COLUMN dashboard BIGINT;
