-- Statement numbers apart from the row ids: a sequence value is taken by every INSERT that
-- finds the statement already there, by a rolled-back transaction and by a crash, so ids as
-- numbers skipped. A number is now the highest before plus one, given in the INSERT that
-- makes the statement. Numbers already issued stay what they were.
ALTER TABLE statements ADD COLUMN number BIGINT;
UPDATE statements SET number = id;
CREATE UNIQUE INDEX statements_number ON statements (number);
