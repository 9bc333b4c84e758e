//! `ChunkStore` for Postgres. Claims take a chunk row with `FOR UPDATE
//! SKIP LOCKED`, so instances claiming at once each get a different chunk;
//! a chunk's journal write locks its chunk row before the batch row, and
//! so does everything else that touches both, so none deadlock.

use async_trait::async_trait;
use batchgate_store::{BatchRecord, Chunk, ChunkProgress, ChunkStore, Lease, StoreError};

use crate::leases::check_fence;
use crate::rows::BatchRow;
use crate::{int, uint, PostgresStore};

/// A chunk row as claimed.
#[derive(sqlx::FromRow)]
struct ChunkRow {
    batch_key: String,
    chunk_no: i64,
    first_line: i64,
    end_line: i64,
    byte_offset: i64,
    lease_epoch: i64,
}

#[async_trait]
impl ChunkStore for PostgresStore {
    async fn plan_chunks(&self, lease: &Lease, chunks: &[Chunk]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // The batch row lock of the fence orders two planners of one batch
        // (a stale holder's is refused by it anyway).
        check_fence(&mut tx, Some(lease)).await?;
        sqlx::query(
            "INSERT INTO batch_chunks (batch_key, chunk_no, first_line, end_line, byte_offset) \
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[]) \
             WHERE NOT EXISTS (SELECT 1 FROM batch_chunks WHERE batch_key = $1)",
        )
        .bind(&lease.key)
        .bind(chunks.iter().map(|c| int(c.number)).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| int(c.first_line)).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| int(c.end_line)).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| int(c.offset)).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
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
        let mut tx = self.pool().begin().await?;
        let row: Option<ChunkRow> = sqlx::query_as(
            "UPDATE batch_chunks SET lease_owner = $1, lease_until = $2, lease_epoch = lease_epoch + 1 \
             WHERE (batch_key, chunk_no) = (SELECT c.batch_key, c.chunk_no FROM batch_chunks c \
               JOIN batches b ON b.key = c.batch_key \
               WHERE b.status = 'in_progress' AND NOT c.done \
               AND (c.lease_until IS NULL OR c.lease_until < $3) \
               AND (SELECT COUNT(*) FROM batch_chunks o WHERE o.batch_key = c.batch_key \
                    AND o.lease_owner = $1 AND o.lease_until >= $3 AND NOT o.done) < $4 \
               ORDER BY b.seq, c.chunk_no LIMIT 1 FOR UPDATE OF c SKIP LOCKED) \
             RETURNING batch_key, chunk_no, first_line, end_line, byte_offset, lease_epoch",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(int(per_batch))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let batch: BatchRow = sqlx::query_as("SELECT * FROM batches WHERE key = $1")
            .bind(&row.batch_key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let chunk = Chunk {
            number: uint(row.chunk_no),
            first_line: uint(row.first_line),
            end_line: uint(row.end_line),
            offset: uint(row.byte_offset),
        };
        let lease = Lease::chunk(row.batch_key, chunk.number, owner, row.lease_epoch);
        Ok(Some((BatchRecord::try_from(batch)?, chunk, lease)))
    }

    async fn renew_chunk(&self, lease: &Lease, until: i64) -> Result<bool, StoreError> {
        let Some(chunk) = lease.chunk else {
            return Ok(false);
        };
        let done = sqlx::query(
            "UPDATE batch_chunks SET lease_until = $1 \
             WHERE batch_key = $2 AND chunk_no = $3 AND lease_owner = $4 AND lease_epoch = $5",
        )
        .bind(until)
        .bind(&lease.key)
        .bind(int(chunk))
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
        let (total, done, leased): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE done), \
             COUNT(*) FILTER (WHERE NOT done AND lease_owner IS NOT NULL AND lease_until >= $1) \
             FROM batch_chunks WHERE batch_key = $2",
        )
        .bind(now)
        .bind(key)
        .fetch_one(self.pool())
        .await?;
        Ok(ChunkProgress {
            total: uint(total),
            done: uint(done),
            leased: uint(leased),
        })
    }

    async fn revoke_chunks(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // Chunk rows before the batch row (see the module note); the
        // update waits for a chunk write in flight, and rolls back with
        // the transaction if the fence says no.
        sqlx::query(
            "UPDATE batch_chunks SET lease_owner = NULL, lease_until = NULL, \
             lease_epoch = lease_epoch + 1 WHERE batch_key = $1",
        )
        .bind(&lease.key)
        .execute(&mut *tx)
        .await?;
        check_fence(&mut tx, Some(lease)).await?;
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
            "SELECT line_no FROM batch_results WHERE batch_key = $1 AND line_no >= $2 AND line_no < $3",
        )
        .bind(key)
        .bind(int(first))
        .bind(int(end))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(uint).collect())
    }
}

impl PostgresStore {
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
            "UPDATE batch_chunks SET lease_owner = NULL, lease_until = $6, done = done OR $1 \
             WHERE batch_key = $2 AND chunk_no = $3 AND lease_owner = $4 AND lease_epoch = $5",
        )
        .bind(done)
        .bind(&lease.key)
        .bind(int(chunk))
        .bind(&lease.owner)
        .bind(lease.epoch)
        .bind(not_before)
        .execute(self.pool())
        .await?;
        Ok(freed.rows_affected() == 1)
    }
}
