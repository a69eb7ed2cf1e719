-- A share link may open one dashboard (kind 'dashboard'); its feeds are those the
-- dashboard's widgets name, worked out on each request.
ALTER TABLE shares ADD COLUMN dashboard INTEGER;
