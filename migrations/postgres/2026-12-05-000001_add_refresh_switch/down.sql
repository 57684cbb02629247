ALTER TABLE accounts DROP COLUMN refresh_enabled;
