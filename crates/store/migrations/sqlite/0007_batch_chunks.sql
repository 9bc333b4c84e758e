-- Chunks of a running batch: runs of consecutive input lines, each with
-- the byte offset of its first line, leased to one gateway instance at a
-- time (its own owner, deadline and epoch, which fence the chunk's journal
-- writes). Planned when validation ends; dropped with the journal when
-- the batch ends.
CREATE TABLE batch_chunks (
    batch_key   TEXT    NOT NULL,
    chunk_no    INTEGER NOT NULL,
    first_line  INTEGER NOT NULL,
    end_line    INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER,
    lease_epoch INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_key, chunk_no)
);
CREATE INDEX batch_chunks_open ON batch_chunks (done, lease_until);
CREATE INDEX batch_chunks_owner ON batch_chunks (lease_owner);
