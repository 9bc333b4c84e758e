//! Chunks: how several gateway instances share one batch. Once a batch is
//! validated its holder splits the input into runs of consecutive lines,
//! each with the byte offset of its first line, and any instance may lease
//! a chunk of a running batch, send its lines and journal their results
//! under that chunk's lease.

use async_trait::async_trait;

use crate::{BatchRecord, Lease, StoreError};

/// A run of consecutive input lines (blank ones included), the unit in
/// which instances share a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// 0-based position among the batch's chunks.
    pub number: u64,
    /// First line (1-based, as the journal numbers lines).
    pub first_line: u64,
    /// One past the last line.
    pub end_line: u64,
    /// Byte offset of `first_line` in the input file, so a runner reads
    /// only its own range.
    pub offset: u64,
}

/// Where a batch's chunks stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkProgress {
    pub total: u64,
    pub done: u64,
    /// Chunks not done whose lease still runs at the time asked about.
    pub leased: u64,
}

impl ChunkProgress {
    /// Every chunk is done (and there are some).
    pub fn all_done(&self) -> bool {
        self.total > 0 && self.done == self.total
    }
}

/// The chunks of running batches and their leases. A chunk lease is a
/// [`Lease`] with `chunk` set: [`BatchStore::record_results`]
/// (crate::BatchStore::record_results) under it is fenced by the chunk's
/// owner and epoch, as a batch lease's writes are by the batch's.
#[async_trait]
pub trait ChunkStore: Send + Sync {
    /// Records the chunks of the batch `lease` holds, unless it has chunks
    /// already (a re-validation after a crash plans the same ones again).
    /// Fenced by the batch lease.
    async fn plan_chunks(&self, lease: &Lease, chunks: &[Chunk]) -> Result<(), StoreError>;

    /// Leases to `owner` until `until` one chunk that is not done, of an
    /// `in_progress` batch of which `owner` holds fewer than `per_batch`
    /// chunks, whose lease is free or ran out before `now`, with a new
    /// epoch; durable once returned, exclusive across instances (SQLite:
    /// one writer; Postgres: `FOR UPDATE SKIP LOCKED`). The `per_batch`
    /// bound is what spreads one batch over every instance, and lets one
    /// instance run several batches at once.
    async fn claim_chunk(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        per_batch: u64,
    ) -> Result<Option<(BatchRecord, Chunk, Lease)>, StoreError>;

    /// Extends a held chunk lease; `false` if it no longer holds the chunk.
    async fn renew_chunk(&self, lease: &Lease, until: i64) -> Result<bool, StoreError>;

    /// Gives a chunk lease up with the chunk unfinished: no runner holds it
    /// from then on, and it may be claimed again from `not_before` on (at
    /// once when `None`: a graceful stop). A runner that stopped because
    /// its batch is ending (budget, expiry) parks the chunk this way, so
    /// nobody takes it up again meanwhile. A lease no longer held is left
    /// alone.
    async fn release_chunk(&self, lease: &Lease, not_before: Option<i64>)
        -> Result<(), StoreError>;

    /// Marks the chunk done (every line of it journaled) and frees it;
    /// [`StoreError::LeaseLost`] if the lease no longer holds it.
    async fn finish_chunk(&self, lease: &Lease) -> Result<(), StoreError>;

    /// How many of the batch's chunks exist, are done, and are leased at
    /// `now`.
    async fn chunk_progress(&self, key: &str, now: i64) -> Result<ChunkProgress, StoreError>;

    /// Takes every chunk lease of the batch `lease` holds away (a new
    /// epoch each), so no chunk runner can journal another line: the
    /// batch's holder does this before it writes the result files. On
    /// Postgres it waits for a chunk write in flight to commit. Fenced by
    /// the batch lease.
    async fn revoke_chunks(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Journaled line numbers in `first..end`.
    async fn finished_lines_in(
        &self,
        key: &str,
        first: u64,
        end: u64,
    ) -> Result<Vec<u64>, StoreError>;
}
