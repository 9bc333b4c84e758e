-- Batches. Hot, mutable fields (status, counts, usage, timestamps) are
-- columns so the engine updates them in the same transaction as the line
-- results they summarise. `lease_owner`/`lease_until` hand a batch to one
-- gateway instance at a time (on Postgres: FOR UPDATE SKIP LOCKED).
CREATE TABLE batches (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    key               TEXT    NOT NULL UNIQUE,
    public_id         TEXT    NOT NULL,
    endpoint          TEXT    NOT NULL,
    model             TEXT,
    input_file_id     TEXT    NOT NULL,
    input_key         TEXT    NOT NULL,
    completion_window TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    output_file_id    TEXT,
    error_file_id     TEXT,
    errors            TEXT,
    created_at        INTEGER NOT NULL,
    in_progress_at    INTEGER,
    expires_at        INTEGER,
    finalizing_at     INTEGER,
    completed_at      INTEGER,
    failed_at         INTEGER,
    expired_at        INTEGER,
    cancelling_at     INTEGER,
    cancelled_at      INTEGER,
    total             INTEGER NOT NULL DEFAULT 0,
    completed         INTEGER NOT NULL DEFAULT 0,
    failed            INTEGER NOT NULL DEFAULT 0,
    metadata          TEXT,
    input_tokens      INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens     INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens  INTEGER NOT NULL DEFAULT 0,
    deployment_id     TEXT    NOT NULL,
    upstream_id       TEXT,
    output_expires_seconds INTEGER,
    owner_key         TEXT,
    owner_team        TEXT,
    lease_owner       TEXT,
    lease_until       INTEGER
);
CREATE INDEX batches_active ON batches (status, lease_until);
CREATE INDEX batches_input ON batches (input_key);
CREATE INDEX batches_owner_key ON batches (owner_key);
CREATE INDEX batches_owner_team ON batches (owner_team);

-- The journal: one row per finished line, written once. The primary key
-- makes a line's result exactly-once however often it was attempted.
CREATE TABLE batch_results (
    batch_key TEXT    NOT NULL,
    line_no   INTEGER NOT NULL,
    custom_id TEXT    NOT NULL,
    ok        INTEGER NOT NULL,
    line      TEXT    NOT NULL,
    PRIMARY KEY (batch_key, line_no)
);
