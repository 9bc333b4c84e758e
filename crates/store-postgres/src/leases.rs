//! Claims, leases and the fence; status transitions and finalization.

use batchgate_core::BatchStatus;
use batchgate_store::{BatchRecord, FileRecord, Lease, StoreError, Transition};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::files::insert_file_on;
use crate::rows::{to_json, BatchRow};
use crate::{int, PostgresStore, ACTIVE};

impl PostgresStore {
    /// Leases the oldest claimable batch. `SKIP LOCKED` lets instances
    /// claiming at once each take a different row instead of queueing on
    /// one; the row lock makes the lease check and its write one step. The
    /// claim is returned only after COMMIT succeeded.
    pub(crate) async fn claim(
        &self,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<(BatchRecord, Lease)>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let row: Option<BatchRow> = sqlx::query_as(&format!(
            "UPDATE batches SET lease_owner = $1, lease_until = $2, lease_epoch = lease_epoch + 1 \
             WHERE seq = (SELECT seq FROM batches WHERE status IN {ACTIVE} AND upstream_id IS NULL \
               AND (lease_owner IS NULL OR lease_until < $3) \
               ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *"
        ))
        .bind(owner)
        .bind(until)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let epoch = row.lease_epoch;
        let record = BatchRecord::try_from(row)?;
        let lease = Lease::batch(record.key.clone(), owner, epoch);
        Ok(Some((record, lease)))
    }

    pub(crate) async fn renew(&self, lease: &Lease, until: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE batches SET lease_until = $1 \
             WHERE key = $2 AND lease_owner = $3 AND lease_epoch = $4",
        )
        .bind(until)
        .bind(&lease.key)
        .bind(&lease.owner)
        .bind(lease.epoch)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE batches SET lease_owner = NULL, lease_until = NULL \
             WHERE key = $1 AND lease_owner = $2 AND lease_epoch = $3",
        )
        .bind(&lease.key)
        .bind(&lease.owner)
        .bind(lease.epoch)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(crate) async fn release_all(&self, owner: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for table in ["batches", "batch_chunks"] {
            sqlx::query(&format!(
                "UPDATE {table} SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1"
            ))
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn move_batch(
        &self,
        key: &str,
        t: &Transition,
    ) -> Result<Option<BatchRecord>, StoreError> {
        let mut tx = self.pool().begin().await?;
        check_fence(&mut tx, t.lease.as_ref()).await?;
        let row = apply(&mut tx, key, t, None, None).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub(crate) async fn finalize(
        &self,
        key: &str,
        t: &Transition,
        output: Option<&FileRecord>,
        error: Option<&FileRecord>,
    ) -> Result<Option<BatchRecord>, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Chunk rows first: every transaction that locks a chunk row and
        // the batch row takes them in that order (a chunk's journal write
        // does), so none can deadlock on the other. Rolled back with the
        // rest if the fence or the status says no.
        sqlx::query("DELETE FROM batch_chunks WHERE batch_key = $1")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        check_fence(&mut tx, t.lease.as_ref()).await?;
        let ids = (
            output.map(|f| f.object.id.as_str()),
            error.map(|f| f.object.id.as_str()),
        );
        let Some(row) = apply(&mut tx, key, t, ids.0, ids.1).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        for file in [output, error].into_iter().flatten() {
            insert_file_on(&mut *tx, file).await?;
        }
        sqlx::query("DELETE FROM batch_results WHERE batch_key = $1")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(row))
    }
}

/// Fails with [`StoreError::LeaseLost`] unless `lease` (when given) still
/// holds its batch. Run first in a write transaction: the row lock it takes
/// keeps a claim (which must lock the row to bump the epoch) from slipping
/// in before the transaction's writes commit, so nothing can land under a
/// lease that lost the batch.
pub(crate) async fn check_fence(
    conn: &mut PgConnection,
    lease: Option<&Lease>,
) -> Result<(), StoreError> {
    let Some(lease) = lease else { return Ok(()) };
    let held: Option<i32> =
        match lease.chunk {
            None => sqlx::query_scalar(
                "SELECT 1 FROM batches WHERE key = $1 AND lease_owner = $2 AND lease_epoch = $3 \
                 FOR NO KEY UPDATE",
            )
            .bind(&lease.key)
            .bind(&lease.owner)
            .bind(lease.epoch)
            .fetch_optional(conn)
            .await?,
            // A chunk's lease: its row is locked instead, so a takeover (which
            // must lock it to bump the epoch) waits for this write to commit.
            Some(chunk) => {
                sqlx::query_scalar(
                    "SELECT 1 FROM batch_chunks WHERE batch_key = $1 AND chunk_no = $2 \
                 AND lease_owner = $3 AND lease_epoch = $4 FOR NO KEY UPDATE",
                )
                .bind(&lease.key)
                .bind(int(chunk))
                .bind(&lease.owner)
                .bind(lease.epoch)
                .fetch_optional(conn)
                .await?
            }
        };
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost),
    }
}

/// Applies `t` to `key` if it is in one of `t.from` (the row lock of the
/// UPDATE rechecks the status against concurrent moves).
async fn apply(
    conn: &mut PgConnection,
    key: &str,
    t: &Transition,
    output_file_id: Option<&str>,
    error_file_id: Option<&str>,
) -> Result<Option<BatchRecord>, StoreError> {
    let mut q: QueryBuilder<'_, Postgres> = QueryBuilder::new("UPDATE batches SET status = ");
    q.push_bind(t.to.as_str());
    if let Some(col) = timestamp_column(t.to) {
        q.push(format!(", {col} = ")).push_bind(t.at);
    }
    if let Some(total) = t.total {
        q.push(", total = ").push_bind(int(total));
    }
    if let Some(errors) = &t.errors {
        q.push(", errors = ").push_bind(to_json(&Some(errors))?);
    }
    if let Some(id) = output_file_id {
        q.push(", output_file_id = ").push_bind(id.to_string());
    }
    if let Some(id) = error_file_id {
        q.push(", error_file_id = ").push_bind(id.to_string());
    }
    if t.to.is_terminal() {
        q.push(", lease_owner = NULL, lease_until = NULL");
    }
    q.push(" WHERE key = ")
        .push_bind(key.to_string())
        .push(" AND status IN (");
    let mut list = q.separated(", ");
    for s in &t.from {
        list.push_bind(s.as_str());
    }
    if t.from.is_empty() {
        // No state to move from: nothing matches (Postgres has no `IN ()`).
        list.push("NULL");
    }
    q.push(") RETURNING *");
    let row: Option<BatchRow> = q.build_query_as().fetch_optional(conn).await?;
    row.map(BatchRecord::try_from).transpose()
}

fn timestamp_column(s: BatchStatus) -> Option<&'static str> {
    Some(match s {
        BatchStatus::Validating => return None,
        BatchStatus::InProgress => "in_progress_at",
        BatchStatus::Finalizing => "finalizing_at",
        BatchStatus::Completed => "completed_at",
        BatchStatus::Failed => "failed_at",
        BatchStatus::Expired => "expired_at",
        BatchStatus::Cancelling => "cancelling_at",
        BatchStatus::Cancelled => "cancelled_at",
    })
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use batchgate_store::conformance::rows::{batch, file};
    use batchgate_store::{BatchStore, FileStore};

    use super::check_fence;
    use crate::testing::Scratch;

    /// While a runner's fenced write is open, its lease can lapse but no
    /// other instance can take the batch over: the claim skips the locked
    /// row, and takes it once the write committed.
    #[tokio::test]
    async fn a_takeover_waits_for_the_fenced_write_in_flight() {
        let scratch = Scratch::new().await;
        let (a, b) = (scratch.open().await.unwrap(), scratch.open().await.unwrap());
        a.insert_file(&file("in")).await.unwrap();
        assert!(a.insert_batch(&batch("b1", "in")).await.unwrap());
        let (_, lease) = a.claim_batch("a", 100, 110).await.unwrap().unwrap();

        let mut tx = a.pool().begin().await.unwrap();
        check_fence(&mut tx, Some(&lease)).await.unwrap();
        assert!(
            b.claim_batch("b", 500, 600).await.unwrap().is_none(),
            "the lease lapsed, but the write holding it is still open"
        );
        tx.commit().await.unwrap();
        let (_, taken) = b.claim_batch("b", 500, 600).await.unwrap().unwrap();
        assert!(taken.epoch > lease.epoch);
    }
}
