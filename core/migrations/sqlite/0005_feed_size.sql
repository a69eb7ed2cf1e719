-- emoncms keeps each feed's size in bytes as a stored field: feed/list reports it, and it is
-- refreshed by feed/updatesize and when a feed is cleared, not on every write.
ALTER TABLE feeds ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
