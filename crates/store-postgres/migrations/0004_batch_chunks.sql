-- Chunks of a running batch: runs of consecutive input lines, each with
-- the byte offset of its first line, leased to one gateway instance at a
-- time (its own owner, deadline and epoch, which fence the chunk's journal
-- writes). Claims take rows with FOR UPDATE SKIP LOCKED. Planned when
-- validation ends; dropped with the journal when the batch ends.
CREATE TABLE batch_chunks (
    batch_key   TEXT    NOT NULL,
    chunk_no    BIGINT  NOT NULL,
    first_line  BIGINT  NOT NULL,
    end_line    BIGINT  NOT NULL,
    byte_offset BIGINT  NOT NULL,
    done        BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner TEXT,
    lease_until BIGINT,
    lease_epoch BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_key, chunk_no)
);
CREATE INDEX batch_chunks_open ON batch_chunks (batch_key, chunk_no) WHERE NOT done;
CREATE INDEX batch_chunks_owner ON batch_chunks (lease_owner) WHERE lease_owner IS NOT NULL;
