-- Tenants: one row per Greenhouse account served by this server.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    webhook_secret TEXT NOT NULL,
    -- The secret before the last rotation, accepted until previous_secret_expires_at.
    previous_webhook_secret TEXT,
    previous_secret_expires_at TEXT,
    harvest_client_id TEXT,
    harvest_client_secret TEXT,
    -- Greenhouse user id sent as `sub` when requesting a Harvest token.
    harvest_user_id TEXT,
    disabled_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every webhook request that passed the signature check, kept so it can be replayed.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The Greenhouse-Event-ID header, when sent.
    event_id TEXT,
    action TEXT NOT NULL,
    received_at TEXT NOT NULL,
    -- The raw body as received; NULL once purged by retention.
    body TEXT,
    body_sha256 TEXT NOT NULL,
    -- applied, duplicate, failed, ignored or unsupported.
    outcome TEXT NOT NULL,
    error TEXT,
    applied_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX webhook_deliveries_account_received ON webhook_deliveries (account_id, received_at);
CREATE INDEX webhook_deliveries_account_event ON webhook_deliveries (account_id, event_id);
CREATE INDEX webhook_deliveries_account_outcome ON webhook_deliveries (account_id, outcome);

CREATE TABLE departments (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    name TEXT,
    parent_id BIGINT,
    external_id TEXT,
    created_at TEXT,
    updated_at TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE offices (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    name TEXT,
    location TEXT,
    parent_id BIGINT,
    external_id TEXT,
    created_at TEXT,
    updated_at TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE users (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    name TEXT,
    primary_email TEXT,
    employee_id TEXT,
    deactivated BOOLEAN,
    site_admin BOOLEAN,
    created_at TEXT,
    updated_at TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE jobs (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    name TEXT,
    requisition_id TEXT,
    status TEXT,
    confidential BOOLEAN,
    is_template BOOLEAN,
    department_id BIGINT,
    opened_at TEXT,
    closed_at TEXT,
    created_at TEXT,
    updated_at TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE job_posts (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    job_id BIGINT,
    title TEXT,
    live BOOLEAN,
    active BOOLEAN,
    internal BOOLEAN,
    first_published_at TEXT,
    created_at TEXT,
    updated_at TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX job_posts_account_job_id ON job_posts (account_id, job_id);

CREATE TABLE job_interview_stages (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    job_id BIGINT,
    name TEXT,
    active BOOLEAN,
    sort_order BIGINT,
    created_at TEXT,
    updated_at TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX job_interview_stages_account_job_id ON job_interview_stages (account_id, job_id);

CREATE TABLE candidates (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    company TEXT,
    title TEXT,
    private BOOLEAN,
    can_email BOOLEAN,
    last_activity_at TEXT,
    created_at TEXT,
    updated_at TEXT,
    -- Set when Greenhouse merged this candidate into another one.
    merged_into_id BIGINT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE applications (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    candidate_id BIGINT,
    job_id BIGINT,
    prospect BOOLEAN,
    status TEXT,
    job_interview_stage_id BIGINT,
    stage_name TEXT,
    source_id BIGINT,
    rejected_at TEXT,
    last_activity_at TEXT,
    created_at TEXT,
    updated_at TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX applications_account_candidate_id ON applications (account_id, candidate_id);
CREATE INDEX applications_account_job_id ON applications (account_id, job_id);

CREATE TABLE offers (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    application_id BIGINT,
    candidate_id BIGINT,
    job_id BIGINT,
    version BIGINT,
    status TEXT,
    sent_on TEXT,
    starts_on TEXT,
    resolved_at TEXT,
    created_at TEXT,
    updated_at TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX offers_account_application_id ON offers (account_id, application_id);

CREATE TABLE interviews (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    application_id BIGINT,
    job_id BIGINT,
    job_interview_id BIGINT,
    status TEXT,
    starts_at TEXT,
    ends_at TEXT,
    organizer_id BIGINT,
    created_at TEXT,
    updated_at TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX interviews_account_application_id ON interviews (account_id, application_id);

CREATE TABLE scorecards (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    application_id BIGINT,
    candidate_id BIGINT,
    interviewer_id BIGINT,
    submitter_id BIGINT,
    status TEXT,
    candidate_rating TEXT,
    interviewed_at TEXT,
    submitted_at TEXT,
    created_at TEXT,
    updated_at TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    version_at TEXT,
    deleted_at TEXT,
    last_seen_run_id BIGINT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX scorecards_account_application_id ON scorecards (account_id, application_id);
