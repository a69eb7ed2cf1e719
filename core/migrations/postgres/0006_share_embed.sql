-- A share link may allow its page to be embedded in other sites' frames (the owner's choice).
ALTER TABLE shares ADD COLUMN embed BOOLEAN NOT NULL DEFAULT FALSE;
