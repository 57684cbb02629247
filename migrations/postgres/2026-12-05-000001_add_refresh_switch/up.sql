-- Whether records touched by webhooks are re-read from Harvest by id soon after.
ALTER TABLE accounts ADD COLUMN refresh_enabled BOOLEAN NOT NULL DEFAULT TRUE;
