-- A feed made through feed/create is two steps: the row, then its files on the node that owns
-- the account. `files_pending` holds the interval the files are to have (0 for a
-- variable-interval feed) from the row's insert until the files exist, so that a feed whose
-- files a crash kept from being made is finished when its vshard next opens. NULL: the files
-- were made, or the row is not one feed/create made (an import copies its files itself).
ALTER TABLE feeds ADD COLUMN files_pending BIGINT;
CREATE INDEX feeds_files_pending ON feeds (id) WHERE files_pending IS NOT NULL;
