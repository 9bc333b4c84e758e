-- Batches. Hot, mutable fields (status, counts, usage, cost, timestamps)
-- are columns so a runner updates them in the transaction that journals
-- the lines they summarise. `lease_owner`/`lease_until`/`lease_epoch` hand
-- a batch to one gateway instance at a time; claims take rows with
-- FOR UPDATE SKIP LOCKED, and every runner write checks the epoch.
-- `errors` and `metadata` are JSON kept as text: byte for byte what the
-- client sent, key order included (jsonb would reorder keys).
CREATE TABLE batches (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    created_at        BIGINT  NOT NULL,
    in_progress_at    BIGINT,
    expires_at        BIGINT,
    finalizing_at     BIGINT,
    completed_at      BIGINT,
    failed_at         BIGINT,
    expired_at        BIGINT,
    cancelling_at     BIGINT,
    cancelled_at      BIGINT,
    total             BIGINT  NOT NULL DEFAULT 0,
    completed         BIGINT  NOT NULL DEFAULT 0,
    failed            BIGINT  NOT NULL DEFAULT 0,
    metadata          TEXT,
    input_tokens      BIGINT  NOT NULL DEFAULT 0,
    cached_tokens     BIGINT  NOT NULL DEFAULT 0,
    output_tokens     BIGINT  NOT NULL DEFAULT 0,
    reasoning_tokens  BIGINT  NOT NULL DEFAULT 0,
    cost_input        NUMERIC NOT NULL DEFAULT 0,
    cost_output       NUMERIC NOT NULL DEFAULT 0,
    priced_lines      BIGINT  NOT NULL DEFAULT 0,
    unpriced_lines    BIGINT  NOT NULL DEFAULT 0,
    deployment_id     TEXT    NOT NULL,
    upstream_id       TEXT,
    output_expires_seconds BIGINT,
    owner_key         TEXT,
    owner_team        TEXT,
    lease_owner       TEXT,
    lease_until       BIGINT,
    lease_epoch       BIGINT  NOT NULL DEFAULT 0
);
-- What a claim scans: unfinished gateway-run batches.
CREATE INDEX batches_claimable ON batches (seq)
    WHERE status IN ('validating', 'in_progress', 'finalizing', 'cancelling')
      AND upstream_id IS NULL;
CREATE INDEX batches_input ON batches (input_key);
CREATE INDEX batches_owner_key ON batches (owner_key);
CREATE INDEX batches_owner_team ON batches (owner_team);
CREATE INDEX batches_lease_owner ON batches (lease_owner) WHERE lease_owner IS NOT NULL;

-- The journal: one row per finished line, written once. The primary key
-- makes a line's result exactly-once however often it was attempted.
CREATE TABLE batch_results (
    batch_key TEXT    NOT NULL,
    line_no   BIGINT  NOT NULL,
    custom_id TEXT    NOT NULL,
    ok        BOOLEAN NOT NULL,
    line      TEXT    NOT NULL,
    PRIMARY KEY (batch_key, line_no)
);
