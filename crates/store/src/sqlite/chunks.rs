//! `ChunkStore` for SQLite. Every write is one `BEGIN IMMEDIATE`
//! transaction: SQLite has one writer at a time, which is what makes a
//! claim exclusive.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::batches::check_fence;
use super::rows::{batch_from_row, int};
use super::SqliteStore;
use crate::{BatchRecord, Chunk, ChunkProgress, ChunkStore, Lease, StoreError};

#[async_trait]
impl ChunkStore for SqliteStore {
    async fn plan_chunks(&self, lease: &Lease, chunks: &[Chunk]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        check_fence(&mut tx, Some(lease)).await?;
        let planned: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM batch_chunks WHERE batch_key = ?")
                .bind(&lease.key)
                .fetch_one(&mut *tx)
                .await?;
        if planned == 0 {
            for c in chunks {
                sqlx::query(
                    "INSERT INTO batch_chunks (batch_key, chunk_no, first_line, end_line, byte_offset) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(&lease.key)
                .bind(int(c.number))
                .bind(int(c.first_line))
                .bind(int(c.end_line))
                .bind(int(c.offset))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_chunk(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        per_batch: u64,
    ) -> Result<Option<(BatchRecord, Chunk, Lease)>, StoreError> {
        // Read to the end and committed before anything is returned, as
        // for batch claims: a claim that did not persist is no claim.
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(
            "UPDATE batch_chunks SET lease_owner = ?, lease_until = ?, lease_epoch = lease_epoch + 1 \
             WHERE rowid = (SELECT c.rowid FROM batch_chunks c JOIN batches b ON b.key = c.batch_key \
               WHERE b.status = 'in_progress' AND c.done = 0 \
               AND (c.lease_until IS NULL OR c.lease_until < ?) \
               AND (SELECT COUNT(*) FROM batch_chunks o WHERE o.batch_key = c.batch_key \
                    AND o.lease_owner = ? AND o.lease_until >= ? AND o.done = 0) < ? \
               ORDER BY b.seq, c.chunk_no LIMIT 1) RETURNING *",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(owner)
        .bind(now)
        .bind(int(per_batch))
        .fetch_all(&mut *tx)
        .await?;
        let Some(row) = rows.first() else {
            tx.commit().await?;
            return Ok(None);
        };
        let (chunk, lease) = chunk_from_row(row, owner)?;
        let batch = sqlx::query("SELECT * FROM batches WHERE key = ?")
            .bind(&lease.key)
            .fetch_one(&mut *tx)
            .await?;
        let record = batch_from_row(&batch)?;
        tx.commit().await?;
        Ok(Some((record, chunk, lease)))
    }

    async fn renew_chunk(&self, lease: &Lease, until: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE batch_chunks SET lease_until = ? \
             WHERE batch_key = ? AND chunk_no = ? AND lease_owner = ? AND lease_epoch = ?",
        )
        .bind(until)
        .bind(&lease.key)
        .bind(lease.chunk.map_or(-1, int))
        .bind(&lease.owner)
        .bind(lease.epoch)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_chunk(
        &self,
        lease: &Lease,
        not_before: Option<i64>,
    ) -> Result<(), StoreError> {
        self.free_chunk(lease, false, not_before).await.map(|_| ())
    }

    async fn finish_chunk(&self, lease: &Lease) -> Result<(), StoreError> {
        match self.free_chunk(lease, true, None).await? {
            true => Ok(()),
            false => Err(StoreError::LeaseLost),
        }
    }

    async fn chunk_progress(&self, key: &str, now: i64) -> Result<ChunkProgress, StoreError> {
        let (total, done, leased): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), SUM(done), \
             SUM(CASE WHEN done = 0 AND lease_owner IS NOT NULL AND lease_until >= ? THEN 1 ELSE 0 END) \
             FROM batch_chunks WHERE batch_key = ?",
        )
        .bind(now)
        .bind(key)
        .fetch_one(self.pool())
        .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        Ok(ChunkProgress {
            total: count(total),
            done: count(done.unwrap_or(0)),
            leased: count(leased.unwrap_or(0)),
        })
    }

    async fn revoke_chunks(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        check_fence(&mut tx, Some(lease)).await?;
        sqlx::query(
            "UPDATE batch_chunks SET lease_owner = NULL, lease_until = NULL, \
             lease_epoch = lease_epoch + 1 WHERE batch_key = ?",
        )
        .bind(&lease.key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finished_lines_in(
        &self,
        key: &str,
        first: u64,
        end: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT line_no FROM batch_results WHERE batch_key = ? AND line_no >= ? AND line_no < ?",
        )
        .bind(key)
        .bind(int(first))
        .bind(int(end))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|n| u64::try_from(n).ok())
            .collect())
    }
}

impl SqliteStore {
    /// Clears a held chunk lease, marking the chunk done when `done`;
    /// `false` if the lease no longer held it.
    async fn free_chunk(
        &self,
        lease: &Lease,
        done: bool,
        not_before: Option<i64>,
    ) -> Result<bool, StoreError> {
        let Some(chunk) = lease.chunk else {
            return Ok(false);
        };
        let freed = sqlx::query(
            "UPDATE batch_chunks SET lease_owner = NULL, lease_until = ?, done = done OR ? \
             WHERE batch_key = ? AND chunk_no = ? AND lease_owner = ? AND lease_epoch = ?",
        )
        .bind(not_before)
        .bind(done)
        .bind(&lease.key)
        .bind(int(chunk))
        .bind(&lease.owner)
        .bind(lease.epoch)
        .execute(self.pool())
        .await?;
        Ok(freed.rows_affected() == 1)
    }
}

fn chunk_from_row(r: &SqliteRow, owner: &str) -> Result<(Chunk, Lease), StoreError> {
    let n = |col: &str| -> Result<u64, StoreError> {
        let v: i64 = r.try_get(col)?;
        Ok(u64::try_from(v).unwrap_or_default())
    };
    let chunk = Chunk {
        number: n("chunk_no")?,
        first_line: n("first_line")?,
        end_line: n("end_line")?,
        offset: n("byte_offset")?,
    };
    let key: String = r.try_get("batch_key")?;
    let lease = Lease::chunk(key, chunk.number, owner, r.try_get("lease_epoch")?);
    Ok((chunk, lease))
}
