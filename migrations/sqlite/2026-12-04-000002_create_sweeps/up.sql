-- One reconciliation sweep of one account.
CREATE TABLE sweep_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- incremental or full.
    mode TEXT NOT NULL,
    -- running, completed or failed.
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    -- Records written by other paths after this instant are never marked deleted by the run.
    window_end TEXT NOT NULL,
    pages BIGINT NOT NULL DEFAULT 0,
    records BIGINT NOT NULL DEFAULT 0,
    deleted BIGINT NOT NULL DEFAULT 0,
    -- JSON list of resources skipped (403) or left without deletions (suspicious emptiness).
    notes TEXT NOT NULL DEFAULT '[]',
    error TEXT
);
CREATE INDEX sweep_runs_account_started ON sweep_runs (account_id, started_at);

-- One cursor chain of a run: a resource, or a created_at slice of one, with its checkpoint.
CREATE TABLE sweep_chains (
    run_id BIGINT NOT NULL REFERENCES sweep_runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    resource TEXT NOT NULL,
    created_from TEXT,
    created_before TEXT,
    updated_from TEXT,
    updated_to TEXT,
    -- The Link rel="next" URL to request next; NULL before the first page.
    next_url TEXT,
    -- pending, done, skipped or failed.
    status TEXT NOT NULL,
    pages BIGINT NOT NULL DEFAULT 0,
    records BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (run_id, position)
);

-- Per account and resource: how far incremental sweeps have read.
CREATE TABLE sync_state (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    -- Start of the last completed run that read this resource; the next incremental run
    -- reads records updated since then, minus an overlap.
    watermark TEXT,
    last_run_id BIGINT,
    last_completed_at TEXT,
    last_full_completed_at TEXT,
    PRIMARY KEY (account_id, resource)
);

-- Which process is sweeping an account, so that replicas sharing a database take turns.
CREATE TABLE sweep_leases (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    run_id BIGINT,
    expires_at TEXT NOT NULL
);

-- Records touched by webhooks, to be re-read from Harvest by id.
CREATE TABLE refresh_queue (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    id BIGINT NOT NULL,
    queued_at TEXT NOT NULL,
    PRIMARY KEY (account_id, resource, id)
);
