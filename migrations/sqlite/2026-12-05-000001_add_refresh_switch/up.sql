-- Whether records touched by webhooks are re-read from Harvest by id soon after (1 or 0).
ALTER TABLE accounts ADD COLUMN refresh_enabled INTEGER NOT NULL DEFAULT 1;
