//! A store that fails on purpose: wraps any [`MetaStore`] and makes chosen
//! operations fail as a full disk would, so tests can prove what the engine
//! does under store faults without filling a real disk. Enabled by the
//! `testing` feature.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use batchgate_core::{Caller, ListOrder};

use crate::{
    BatchRecord, BatchStats, BatchStore, Chunk, ChunkProgress, ChunkStore, Deleted, FileFilter,
    FileRecord, FileStore, FleetStore, KeyRecord, KeyStore, Lease, LineResult, MetaStore, Page,
    Presence, SpendFilter, SpendRow, SpendStore, StoreError, TeamRecord, Transition,
};

/// How many of the next calls of each kind fail (then they pass again).
#[derive(Debug, Default)]
pub struct Faults {
    pub claims: AtomicU32,
    pub commits: AtomicU32,
    pub renewals: AtomicU32,
    pub transitions: AtomicU32,
    /// Claims that returned a batch, ever.
    pub claims_granted: AtomicU64,
    /// Claims that returned a chunk, ever.
    pub chunk_claims_granted: AtomicU64,
}

impl Faults {
    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The error a full disk gives.
fn disk_full() -> StoreError {
    StoreError::Io(std::io::Error::from_raw_os_error(28))
}

/// [`MetaStore`] that delegates to `inner` except where [`Faults`] say fail.
#[derive(Debug, Clone)]
pub struct FaultyStore {
    pub inner: Arc<dyn MetaStore>,
    pub faults: Arc<Faults>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn MetaStore>) -> FaultyStore {
        FaultyStore {
            inner,
            faults: Arc::new(Faults::default()),
        }
    }
}

#[async_trait]
impl MetaStore for FaultyStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[async_trait]
impl FileStore for FaultyStore {
    async fn insert_file(&self, file: &FileRecord) -> Result<(), StoreError> {
        self.inner.insert_file(file).await
    }
    async fn get_file(&self, key: &str, now: i64) -> Result<Option<FileRecord>, StoreError> {
        self.inner.get_file(key, now).await
    }
    async fn list_files(
        &self,
        filter: &FileFilter,
        after: Option<&str>,
        limit: u32,
        order: ListOrder,
    ) -> Result<Page<FileRecord>, StoreError> {
        self.inner.list_files(filter, after, limit, order).await
    }
    async fn delete_file(&self, key: &str) -> Result<Deleted, StoreError> {
        self.inner.delete_file(key).await
    }
    async fn take_expired_files(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<FileRecord>, StoreError> {
        self.inner.take_expired_files(now, limit).await
    }
}

#[async_trait]
impl BatchStore for FaultyStore {
    async fn insert_batch(&self, batch: &BatchRecord) -> Result<bool, StoreError> {
        self.inner.insert_batch(batch).await
    }
    async fn get_batch(&self, key: &str) -> Result<Option<BatchRecord>, StoreError> {
        self.inner.get_batch(key).await
    }
    async fn upsert_forwarded_batch(&self, batch: &BatchRecord) -> Result<(), StoreError> {
        self.inner.upsert_forwarded_batch(batch).await
    }
    async fn list_batches(
        &self,
        caller: &Caller,
        model_name: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<BatchRecord>, StoreError> {
        self.inner
            .list_batches(caller, model_name, after, limit)
            .await
    }
    async fn batch_stats(&self) -> Result<BatchStats, StoreError> {
        self.inner.batch_stats().await
    }
    async fn lease_holders(&self, now: i64) -> Result<Vec<crate::LeaseHolder>, StoreError> {
        self.inner.lease_holders(now).await
    }
    async fn file_in_use(&self, file_key: &str) -> Result<bool, StoreError> {
        self.inner.file_in_use(file_key).await
    }
    async fn claim_batch(
        &self,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<(BatchRecord, Lease)>, StoreError> {
        if Faults::take(&self.faults.claims) {
            return Err(disk_full());
        }
        let claim = self.inner.claim_batch(owner, now, until).await?;
        if claim.is_some() {
            self.faults.claims_granted.fetch_add(1, Ordering::AcqRel);
        }
        Ok(claim)
    }
    async fn renew_lease(&self, lease: &Lease, until: i64) -> Result<bool, StoreError> {
        if Faults::take(&self.faults.renewals) {
            return Err(disk_full());
        }
        self.inner.renew_lease(lease, until).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release_lease(lease).await
    }
    async fn release_leases(&self, owner: &str) -> Result<(), StoreError> {
        self.inner.release_leases(owner).await
    }
    async fn transition(
        &self,
        key: &str,
        t: &Transition,
    ) -> Result<Option<BatchRecord>, StoreError> {
        if Faults::take(&self.faults.transitions) {
            return Err(disk_full());
        }
        self.inner.transition(key, t).await
    }
    async fn record_results(
        &self,
        lease: &Lease,
        results: &[LineResult],
    ) -> Result<(), StoreError> {
        if Faults::take(&self.faults.commits) {
            return Err(disk_full());
        }
        self.inner.record_results(lease, results).await
    }
    async fn finished_lines(&self, key: &str) -> Result<Vec<u64>, StoreError> {
        self.inner.finished_lines(key).await
    }
    async fn results_page(
        &self,
        key: &str,
        ok: bool,
        after_line: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        self.inner.results_page(key, ok, after_line, limit).await
    }
    async fn finalize_batch(
        &self,
        key: &str,
        t: &Transition,
        output: Option<&FileRecord>,
        error: Option<&FileRecord>,
    ) -> Result<Option<BatchRecord>, StoreError> {
        if Faults::take(&self.faults.transitions) {
            return Err(disk_full());
        }
        self.inner.finalize_batch(key, t, output, error).await
    }
}

#[async_trait]
impl ChunkStore for FaultyStore {
    async fn plan_chunks(&self, lease: &Lease, chunks: &[Chunk]) -> Result<(), StoreError> {
        if Faults::take(&self.faults.transitions) {
            return Err(disk_full());
        }
        self.inner.plan_chunks(lease, chunks).await
    }
    async fn claim_chunk(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        per_batch: u64,
    ) -> Result<Option<(BatchRecord, Chunk, Lease)>, StoreError> {
        if Faults::take(&self.faults.claims) {
            return Err(disk_full());
        }
        let claim = self.inner.claim_chunk(owner, now, until, per_batch).await?;
        if claim.is_some() {
            self.faults
                .chunk_claims_granted
                .fetch_add(1, Ordering::AcqRel);
        }
        Ok(claim)
    }
    async fn renew_chunk(&self, lease: &Lease, until: i64) -> Result<bool, StoreError> {
        if Faults::take(&self.faults.renewals) {
            return Err(disk_full());
        }
        self.inner.renew_chunk(lease, until).await
    }
    async fn release_chunk(
        &self,
        lease: &Lease,
        not_before: Option<i64>,
    ) -> Result<(), StoreError> {
        self.inner.release_chunk(lease, not_before).await
    }
    async fn finish_chunk(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.finish_chunk(lease).await
    }
    async fn chunk_progress(&self, key: &str, now: i64) -> Result<ChunkProgress, StoreError> {
        self.inner.chunk_progress(key, now).await
    }
    async fn revoke_chunks(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.revoke_chunks(lease).await
    }
    async fn finished_lines_in(
        &self,
        key: &str,
        first: u64,
        end: u64,
    ) -> Result<Vec<u64>, StoreError> {
        self.inner.finished_lines_in(key, first, end).await
    }
}

#[async_trait]
impl KeyStore for FaultyStore {
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        self.inner.insert_key(key).await
    }
    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.key_by_hash(key_hash).await
    }
    async fn key_by_id(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.key_by_id(key_id).await
    }
    async fn update_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        self.inner.update_key(key).await
    }
    async fn delete_key(&self, key_id: &str) -> Result<bool, StoreError> {
        self.inner.delete_key(key_id).await
    }
    async fn upsert_team(&self, team: &TeamRecord) -> Result<(), StoreError> {
        self.inner.upsert_team(team).await
    }
    async fn team(&self, team_id: &str) -> Result<Option<TeamRecord>, StoreError> {
        self.inner.team(team_id).await
    }
    async fn reset_budgets(&self, now: i64) -> Result<u64, StoreError> {
        self.inner.reset_budgets(now).await
    }
}

#[async_trait]
impl SpendStore for FaultyStore {
    async fn spend_logs(
        &self,
        filter: &SpendFilter,
        limit: u32,
    ) -> Result<Vec<SpendRow>, StoreError> {
        self.inner.spend_logs(filter, limit).await
    }
}

#[async_trait]
impl FleetStore for FaultyStore {
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }

    async fn heartbeat(
        &self,
        instance: &str,
        models: &[String],
        now: i64,
        live_since: i64,
    ) -> Result<Vec<Presence>, StoreError> {
        self.inner
            .heartbeat(instance, models, now, live_since)
            .await
    }

    async fn presence(&self, live_since: i64) -> Result<Vec<Presence>, StoreError> {
        self.inner.presence(live_since).await
    }
}
