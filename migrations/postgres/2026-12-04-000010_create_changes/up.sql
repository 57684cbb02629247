-- The change feed: one row per change of a stored record, numbered per account.
CREATE TABLE changes (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- 1, 2, 3, ... per account, without gaps, in commit order.
    seq BIGINT NOT NULL,
    -- The table of the record, such as applications.
    resource TEXT NOT NULL,
    record_id BIGINT NOT NULL,
    -- created, updated, deleted or merged.
    kind TEXT NOT NULL,
    -- JSON list of the names of the changed fields.
    changed_fields JSONB NOT NULL,
    -- webhook, refresh or sweep.
    source TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, seq)
);
CREATE INDEX changes_changed_at ON changes (changed_at);

-- The last sequence number handed out per account. Writers of one account update this row
-- last in their transaction, so its row lock makes sequence order equal commit order.
CREATE TABLE change_sequences (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    last_seq BIGINT NOT NULL
);
