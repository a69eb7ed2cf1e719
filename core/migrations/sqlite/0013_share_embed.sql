-- A share link may allow its page to be embedded in other sites' frames (the owner's choice).
ALTER TABLE shares ADD COLUMN embed INTEGER NOT NULL DEFAULT 0;
