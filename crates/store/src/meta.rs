//! The metadata trait.

use async_trait::async_trait;
use batchgate_core::ListOrder;

use crate::{FileFilter, FileRecord, StoreError};

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// Object metadata. Implementations must make every write atomic and
/// durable once the call returns: the HTTP layer acknowledges right after.
#[async_trait]
pub trait MetaStore: Send + Sync + std::fmt::Debug {
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

    /// Removes a row and returns it (so its blob can be removed too).
    async fn delete_file(&self, key: &str) -> Result<Option<FileRecord>, StoreError>;

    /// Removes up to `limit` rows that expired at or before `now` and
    /// returns them.
    async fn take_expired_files(&self, now: i64, limit: u32)
        -> Result<Vec<FileRecord>, StoreError>;

    /// Cheap reachability check for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;
}
