-- Whether `feeds` on this day was recorded (by the day's snapshot, or when a feed was created
-- or deleted) and so holds the most feeds the account had at once that day; a row written
-- only by the shard workers' counts leaves it 0, and the accrual then uses the feeds it finds.
ALTER TABLE usage_days ADD COLUMN feeds_seen BIGINT NOT NULL DEFAULT 0;
