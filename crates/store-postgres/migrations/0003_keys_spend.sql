-- Virtual keys (only hashes are stored), teams, and the spend ledger.
-- Amounts are exact NUMERIC, raised in place (`spend = spend + $1`) so
-- instances accruing at once never lose each other's amounts.
CREATE TABLE keys (
    key_id          TEXT    PRIMARY KEY,
    key_hash        TEXT    NOT NULL UNIQUE,
    key_alias       TEXT,
    team_id         TEXT,
    models          TEXT[]  NOT NULL DEFAULT '{}',
    max_budget      NUMERIC,
    budget_duration TEXT,
    budget_seconds  BIGINT,
    budget_reset_at BIGINT,
    spend           NUMERIC NOT NULL DEFAULT 0,
    -- JSON as text: key order as the admin sent it.
    metadata        TEXT    NOT NULL DEFAULT '{}',
    created_at      BIGINT  NOT NULL
);
CREATE INDEX keys_team ON keys (team_id);

CREATE TABLE teams (
    team_id         TEXT    PRIMARY KEY,
    team_alias      TEXT,
    max_budget      NUMERIC,
    budget_duration TEXT,
    budget_seconds  BIGINT,
    budget_reset_at BIGINT,
    spend           NUMERIC NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL
);

-- One row per group of journaled lines (one runner commit): written in
-- the same transaction as the journal rows it prices, so it is
-- exactly-once.
CREATE TABLE spend_logs (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_key      TEXT    NOT NULL,
    batch_id       TEXT    NOT NULL,
    key_id         TEXT,
    team_id        TEXT,
    model          TEXT    NOT NULL,
    deployment_id  TEXT    NOT NULL,
    day            TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    lines          BIGINT  NOT NULL,
    input_tokens   BIGINT  NOT NULL,
    cached_tokens  BIGINT  NOT NULL,
    output_tokens  BIGINT  NOT NULL,
    cost           NUMERIC NOT NULL,
    priced_lines   BIGINT  NOT NULL,
    unpriced_lines BIGINT  NOT NULL
);
CREATE INDEX spend_logs_day ON spend_logs (day);
CREATE INDEX spend_logs_batch ON spend_logs (batch_id);
CREATE INDEX spend_logs_key ON spend_logs (key_id);
CREATE INDEX spend_logs_team ON spend_logs (team_id);
