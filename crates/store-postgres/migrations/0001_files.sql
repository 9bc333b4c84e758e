-- Files. `seq` orders listings and makes cursors stable; `key` is the ID
-- codec's local key. Owner columns implement per-key/team isolation. Times
-- are unix seconds, as on SQLite.
CREATE TABLE files (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key            TEXT   NOT NULL UNIQUE,
    public_id      TEXT   NOT NULL,
    bytes          BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    filename       TEXT   NOT NULL,
    purpose        TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    expires_at     BIGINT,
    status_details TEXT,
    deployment_id  TEXT   NOT NULL,
    model_name     TEXT   NOT NULL,
    blob_path      TEXT,
    upstream_id    TEXT,
    owner_key      TEXT,
    owner_team     TEXT
);
CREATE INDEX files_expires_at ON files (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX files_owner_key ON files (owner_key);
CREATE INDEX files_owner_team ON files (owner_team);

-- A deleted (or swept) file keeps its place in the listing order and its
-- owners, so its owner paging with `after=<that file>` continues where it
-- was, and anyone else's cursor behaves like an unknown ID.
CREATE TABLE file_tombstones (
    key        TEXT   PRIMARY KEY,
    seq        BIGINT NOT NULL,
    owner_key  TEXT,
    owner_team TEXT
);
CREATE FUNCTION files_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO file_tombstones (key, seq, owner_key, owner_team)
    VALUES (OLD.key, OLD.seq, OLD.owner_key, OLD.owner_team)
    ON CONFLICT (key) DO UPDATE SET seq = EXCLUDED.seq,
        owner_key = EXCLUDED.owner_key, owner_team = EXCLUDED.owner_team;
    RETURN OLD;
END;
$$;
CREATE TRIGGER files_tombstone AFTER DELETE ON files
    FOR EACH ROW EXECUTE FUNCTION files_tombstone();
