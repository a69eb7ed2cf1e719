-- Virtual feeds (engine 7) compute their values with a process list over their source feeds.
ALTER TABLE feeds ADD COLUMN processList TEXT NOT NULL DEFAULT '';
