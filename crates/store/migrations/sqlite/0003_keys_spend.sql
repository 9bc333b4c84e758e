-- Virtual keys (only hashes are stored), teams, and the spend ledger.
-- Amounts are exact decimals kept as TEXT and summed in Rust: no floats.
CREATE TABLE keys (
    key_id            TEXT PRIMARY KEY,
    key_hash          TEXT NOT NULL UNIQUE,
    key_alias         TEXT,
    team_id           TEXT,
    models            TEXT NOT NULL DEFAULT '[]',
    max_budget        TEXT,
    budget_duration   TEXT,
    budget_seconds    INTEGER,
    budget_reset_at   INTEGER,
    spend             TEXT NOT NULL DEFAULT '0',
    metadata          TEXT NOT NULL DEFAULT '{}',
    created_at        INTEGER NOT NULL
);
CREATE INDEX keys_team ON keys (team_id);

CREATE TABLE teams (
    team_id           TEXT PRIMARY KEY,
    team_alias        TEXT,
    max_budget        TEXT,
    budget_duration   TEXT,
    budget_seconds    INTEGER,
    budget_reset_at   INTEGER,
    spend             TEXT NOT NULL DEFAULT '0',
    created_at        INTEGER NOT NULL
);

-- One row per group of journaled lines (one engine commit): written in the
-- same transaction as the journal rows it prices, so it is exactly-once.
CREATE TABLE spend_logs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_key       TEXT    NOT NULL,
    batch_id        TEXT    NOT NULL,
    key_id          TEXT,
    team_id         TEXT,
    model           TEXT    NOT NULL,
    deployment_id   TEXT    NOT NULL,
    day             TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    lines           INTEGER NOT NULL,
    input_tokens    INTEGER NOT NULL,
    cached_tokens   INTEGER NOT NULL,
    output_tokens   INTEGER NOT NULL,
    cost            TEXT    NOT NULL,
    priced_lines    INTEGER NOT NULL,
    unpriced_lines  INTEGER NOT NULL
);
CREATE INDEX spend_logs_day ON spend_logs (day);
CREATE INDEX spend_logs_batch ON spend_logs (batch_id);
CREATE INDEX spend_logs_key ON spend_logs (key_id);
CREATE INDEX spend_logs_team ON spend_logs (team_id);

ALTER TABLE batches ADD COLUMN cost_input TEXT NOT NULL DEFAULT '0';
ALTER TABLE batches ADD COLUMN cost_output TEXT NOT NULL DEFAULT '0';
ALTER TABLE batches ADD COLUMN priced_lines INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN unpriced_lines INTEGER NOT NULL DEFAULT 0;
