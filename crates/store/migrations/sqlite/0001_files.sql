-- Files. `seq` orders listings and makes cursors stable; `key` is the ID
-- codec's local key. Owner columns implement per-key/team isolation.
CREATE TABLE files (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    key            TEXT    NOT NULL UNIQUE,
    public_id      TEXT    NOT NULL,
    bytes          INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    filename       TEXT    NOT NULL,
    purpose        TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    expires_at     INTEGER,
    status_details TEXT,
    deployment_id  TEXT    NOT NULL,
    model_name     TEXT    NOT NULL,
    blob_path      TEXT,
    upstream_id    TEXT,
    owner_key      TEXT,
    owner_team     TEXT
);
CREATE INDEX files_expires_at ON files (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX files_owner_key ON files (owner_key);
CREATE INDEX files_owner_team ON files (owner_team);
