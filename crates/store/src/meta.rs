//! The metadata trait.

use async_trait::async_trait;
use batchgate_core::ListOrder;

use crate::{BatchRecord, FileFilter, FileRecord, Lease, LineResult, StoreError, Transition};
use batchgate_core::Caller;

/// Scrape-time numbers about batches.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    pub by_status: Vec<(batchgate_core::BatchStatus, u64)>,
    /// Lines of `validating`/`in_progress` batches without a result yet.
    pub pending_lines: u64,
}

/// An instance holding batch leases: its name (the lease owner), how many
/// batches it holds, and until when its latest lease runs (each renewal
/// pushes it `lease_seconds` ahead, so this dates its last heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub owner: String,
    pub batches: u64,
    pub lease_until: i64,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// All metadata: files and batches. Implementations must make every write
/// atomic and durable once the call returns: the HTTP layer acknowledges
/// right after.
#[async_trait]
pub trait MetaStore:
    FileStore
    + BatchStore
    + crate::ChunkStore
    + crate::KeyStore
    + crate::SpendStore
    + crate::FleetStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Cheap reachability check for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// File metadata.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Commits a new file row; it is visible from then on.
    async fn insert_file(&self, file: &FileRecord) -> Result<(), StoreError>;

    /// A file by key, unless it expired at or before `now`.
    async fn get_file(&self, key: &str, now: i64) -> Result<Option<FileRecord>, StoreError>;

    /// Files by creation order. `after` is a key: the page starts past it
    /// (an unknown key yields an empty page, like an exhausted cursor).
    async fn list_files(
        &self,
        filter: &FileFilter,
        after: Option<&str>,
        limit: u32,
        order: ListOrder,
    ) -> Result<Page<FileRecord>, StoreError>;

    /// Removes a row and returns it (so its blob can be removed too) —
    /// unless a batch that has not ended reads it: checked in the same
    /// atomic step, so a delete racing a batch create either wins (the
    /// create then finds no file) or loses (the file stays until the batch
    /// ends), never leaving a batch without its input.
    async fn delete_file(&self, key: &str) -> Result<Deleted, StoreError>;

    /// Removes up to `limit` rows that expired at or before `now` and
    /// returns them — except inputs of batches that have not ended, which
    /// stay until their batch ends.
    async fn take_expired_files(&self, now: i64, limit: u32)
        -> Result<Vec<FileRecord>, StoreError>;
}

/// What [`FileStore::delete_file`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    Removed(Box<FileRecord>),
    /// A batch that has not ended reads the file; nothing was changed.
    InUse,
    Missing,
}

/// Batch metadata and the per-line journal.
#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Commits a new batch row if its input file (`input_key`) still
    /// exists, atomically with that check; `false` (nothing written) if it
    /// is gone.
    async fn insert_batch(&self, batch: &BatchRecord) -> Result<bool, StoreError>;

    async fn get_batch(&self, key: &str) -> Result<Option<BatchRecord>, StoreError>;

    /// Inserts or refreshes the snapshot of a batch that runs on an
    /// upstream (status, counts, timestamps, result file IDs); ownership
    /// and routing fields keep their first values.
    async fn upsert_forwarded_batch(&self, batch: &BatchRecord) -> Result<(), StoreError>;

    /// Batches the caller may see (only those of `model_name`, when
    /// given), newest first; `after` as for files.
    async fn list_batches(
        &self,
        caller: &Caller,
        model_name: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<BatchRecord>, StoreError>;

    /// Batches per status and lines not yet finished in running batches,
    /// for metrics.
    async fn batch_stats(&self) -> Result<BatchStats, StoreError>;

    /// The instances whose leases run at `now` or later, by name, with the
    /// batches each holds: on a shared database, which instance runs what.
    /// An idle instance holds none and is not listed.
    async fn lease_holders(&self, now: i64) -> Result<Vec<LeaseHolder>, StoreError>;

    /// Whether a batch that has not ended reads this input file.
    async fn file_in_use(&self, file_key: &str) -> Result<bool, StoreError>;

    /// Leases one unfinished gateway-run batch whose lease is free or
    /// expired to `owner` until `until`, with a new epoch. The claim is
    /// returned only once it is durable: a write that did not commit is
    /// an error, never a claim. On Postgres this is `FOR UPDATE SKIP
    /// LOCKED`; the contract is the same.
    async fn claim_batch(
        &self,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<(BatchRecord, Lease)>, StoreError>;

    /// Extends a held lease; `false` if it no longer holds the batch.
    async fn renew_lease(&self, lease: &Lease, until: i64) -> Result<bool, StoreError>;

    /// Gives a lease up (its runner ended); a lease no longer held is left
    /// alone.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Gives up every lease `owner` holds (at start-up after a crash).
    async fn release_leases(&self, owner: &str) -> Result<(), StoreError>;

    /// Applies `t` if the batch is in one of `t.from`; returns the row after
    /// the change, or `None` if the condition did not hold.
    async fn transition(
        &self,
        key: &str,
        t: &Transition,
    ) -> Result<Option<BatchRecord>, StoreError>;

    /// Journals finished lines in one transaction, fenced by `lease`
    /// ([`StoreError::LeaseLost`] and nothing written if it no longer holds
    /// the batch). A line already journaled is left as it is and not counted
    /// again, so counts and usage move exactly once per line.
    async fn record_results(&self, lease: &Lease, results: &[LineResult])
        -> Result<(), StoreError>;

    /// Line numbers already journaled.
    async fn finished_lines(&self, key: &str) -> Result<Vec<u64>, StoreError>;

    /// Journaled lines of one kind (`ok`), in line order, after `after_line`.
    async fn results_page(
        &self,
        key: &str,
        ok: bool,
        after_line: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>, StoreError>;

    /// Ends a batch: commits its result files' rows and its final status in
    /// one transaction (if it is still in one of `t.from`), then drops the
    /// journal, whose lines now live in those files.
    async fn finalize_batch(
        &self,
        key: &str,
        t: &Transition,
        output: Option<&FileRecord>,
        error: Option<&FileRecord>,
    ) -> Result<Option<BatchRecord>, StoreError>;
}
