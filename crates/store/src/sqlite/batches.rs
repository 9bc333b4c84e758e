//! `BatchStore` for SQLite: batches and the line journal.

use async_trait::async_trait;
use batchgate_core::{BatchStatus, Caller};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::files::insert_file_on;
use super::rows::{batch_from_row, int, to_json, uint};
use super::spend::Charged;
use super::{push_visible_to, SqliteStore};
use crate::{BatchRecord, BatchStore, FileRecord, Lease, LineResult, Page, StoreError, Transition};

const ACTIVE: &str = "('validating', 'in_progress', 'finalizing', 'cancelling')";

#[async_trait]
impl BatchStore for SqliteStore {
    async fn insert_batch(&self, r: &BatchRecord) -> Result<bool, StoreError> {
        self.insert_row(r, true).await
    }

    async fn upsert_forwarded_batch(&self, r: &BatchRecord) -> Result<(), StoreError> {
        let b = &r.batch;
        let mut tx = self.pool().begin().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT seq FROM batches WHERE key = ?")
            .bind(&r.key)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            tx.commit().await?;
            return self.insert_row(r, false).await.map(|_| ());
        }
        sqlx::query(
            "UPDATE batches SET status = ?, output_file_id = ?, error_file_id = ?, errors = ?, \
             in_progress_at = ?, expires_at = ?, finalizing_at = ?, completed_at = ?, failed_at = ?, \
             expired_at = ?, cancelling_at = ?, cancelled_at = ?, total = ?, completed = ?, failed = ?, \
             input_tokens = ?, cached_tokens = ?, output_tokens = ?, reasoning_tokens = ? WHERE key = ?",
        )
        .bind(b.status.as_str())
        .bind(&b.output_file_id)
        .bind(&b.error_file_id)
        .bind(to_json(&b.errors)?)
        .bind(b.in_progress_at)
        .bind(b.expires_at)
        .bind(b.finalizing_at)
        .bind(b.completed_at)
        .bind(b.failed_at)
        .bind(b.expired_at)
        .bind(b.cancelling_at)
        .bind(b.cancelled_at)
        .bind(int(b.request_counts.total))
        .bind(int(b.request_counts.completed))
        .bind(int(b.request_counts.failed))
        .bind(int(b.usage.map_or(0, |u| u.input_tokens)))
        .bind(int(b.usage.map_or(0, |u| u.input_tokens_details.cached_tokens)))
        .bind(int(b.usage.map_or(0, |u| u.output_tokens)))
        .bind(int(b.usage.map_or(0, |u| u.output_tokens_details.reasoning_tokens)))
        .bind(&r.key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_batch(&self, key: &str) -> Result<Option<BatchRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM batches WHERE key = ?")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| batch_from_row(&r)).transpose()
    }

    async fn list_batches(
        &self,
        caller: &Caller,
        model_name: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<BatchRecord>, StoreError> {
        // A batch the caller may not see is no cursor: paging from it looks
        // exactly like paging from an unknown ID (nothing leaks).
        let cursor: Option<i64> = match after {
            None => None,
            Some(key) => {
                let mut q: QueryBuilder<'_, Sqlite> =
                    QueryBuilder::new("SELECT seq FROM batches WHERE key = ");
                q.push_bind(key.to_string());
                push_visible_to(&mut q, caller);
                match q.build_query_scalar().fetch_optional(self.pool()).await? {
                    Some(seq) => Some(seq),
                    None => {
                        return Ok(Page {
                            items: vec![],
                            has_more: false,
                        })
                    }
                }
            }
        };
        let mut q: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("SELECT * FROM batches WHERE 1 = 1");
        push_visible_to(&mut q, caller);
        if let Some(model) = model_name {
            q.push(" AND model = ").push_bind(model.to_string());
        }
        if let Some(seq) = cursor {
            q.push(" AND seq < ").push_bind(seq);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.build().fetch_all(self.pool()).await?;
        let mut items = rows
            .iter()
            .map(batch_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok(Page { items, has_more })
    }

    async fn batch_stats(&self) -> Result<crate::BatchStats, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM batches GROUP BY status")
            .fetch_all(self.pool())
            .await?;
        let mut by_status = Vec::new();
        for r in &rows {
            let status: String = r.try_get("status")?;
            if let Some(s) = BatchStatus::parse(&status) {
                by_status.push((s, uint(r, "n")?));
            }
        }
        let pending: Option<i64> = sqlx::query_scalar(
            "SELECT SUM(total - completed - failed) FROM batches WHERE status = 'in_progress' AND upstream_id IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(crate::BatchStats {
            by_status,
            pending_lines: u64::try_from(pending.unwrap_or(0)).unwrap_or(0),
        })
    }

    async fn lease_holders(&self, now: i64) -> Result<Vec<crate::LeaseHolder>, StoreError> {
        let rows = sqlx::query(
            "SELECT lease_owner, COUNT(*) AS n, MAX(lease_until) AS until FROM batches \
             WHERE lease_owner IS NOT NULL AND lease_until >= ? GROUP BY lease_owner ORDER BY lease_owner",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::LeaseHolder {
                    owner: r.try_get("lease_owner")?,
                    batches: uint(r, "n")?,
                    lease_until: r.try_get("until")?,
                })
            })
            .collect()
    }

    async fn file_in_use(&self, file_key: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM batches WHERE input_key = ? AND status IN {ACTIVE}"
        ))
        .bind(file_key)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    async fn claim_batch(
        &self,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<(BatchRecord, Lease)>, StoreError> {
        // An explicit transaction, every row read to the end, then COMMIT:
        // a claim is returned only after its write is durable. (An
        // autocommit `UPDATE … RETURNING` hands its row out before the
        // implicit commit, whose failure — a full disk — went unseen.)
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(&format!(
            "UPDATE batches SET lease_owner = ?, lease_until = ?, lease_epoch = lease_epoch + 1 \
             WHERE seq = (SELECT seq FROM batches WHERE status IN {ACTIVE} AND upstream_id IS NULL \
               AND (lease_owner IS NULL OR lease_until < ?) ORDER BY seq LIMIT 1) RETURNING *"
        ))
        .bind(owner)
        .bind(until)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let lease = Lease::batch(
            row.try_get::<String, _>("key")?,
            owner,
            row.try_get::<i64, _>("lease_epoch")?,
        );
        Ok(Some((batch_from_row(row)?, lease)))
    }

    async fn renew_lease(&self, lease: &Lease, until: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE batches SET lease_until = ? WHERE key = ? AND lease_owner = ? AND lease_epoch = ?",
        )
        .bind(until)
        .bind(&lease.key)
        .bind(&lease.owner)
        .bind(lease.epoch)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE batches SET lease_owner = NULL, lease_until = NULL \
             WHERE key = ? AND lease_owner = ? AND lease_epoch = ?",
        )
        .bind(&lease.key)
        .bind(&lease.owner)
        .bind(lease.epoch)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn release_leases(&self, owner: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        for table in ["batches", "batch_chunks"] {
            sqlx::query(&format!(
                "UPDATE {table} SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?"
            ))
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn transition(
        &self,
        key: &str,
        t: &Transition,
    ) -> Result<Option<BatchRecord>, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        check_fence(&mut tx, t.lease.as_ref()).await?;
        let row = apply(&mut tx, key, t, None, None).await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn record_results(
        &self,
        lease: &Lease,
        results: &[LineResult],
    ) -> Result<(), StoreError> {
        let key = lease.key.as_str();
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        check_fence(&mut tx, Some(lease)).await?;
        let (mut ok, mut failed) = (0i64, 0i64);
        let (mut input, mut cached, mut output, mut reasoning) = (0i64, 0i64, 0i64, 0i64);
        let mut charged = Charged::zero();
        for r in results {
            let inserted = sqlx::query(
                "INSERT INTO batch_results (batch_key, line_no, custom_id, ok, line) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (batch_key, line_no) DO NOTHING",
            )
            .bind(key)
            .bind(int(r.line_no))
            .bind(&r.custom_id)
            .bind(r.ok)
            .bind(&r.line)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                continue;
            }
            if r.ok {
                ok += 1;
            } else {
                failed += 1;
            }
            if let Some(u) = r.usage {
                input += int(u.input_tokens);
                cached += int(u.cached_tokens);
                output += int(u.output_tokens);
                reasoning += int(u.reasoning_tokens);
            }
            if let Some(c) = r.charge {
                charged.add(&c);
            }
        }
        sqlx::query(
            "UPDATE batches SET completed = completed + ?, failed = failed + ?, input_tokens = input_tokens + ?, \
             cached_tokens = cached_tokens + ?, output_tokens = output_tokens + ?, \
             reasoning_tokens = reasoning_tokens + ? WHERE key = ?",
        )
        .bind(ok)
        .bind(failed)
        .bind(input)
        .bind(cached)
        .bind(output)
        .bind(reasoning)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        if charged.priced_lines + charged.unpriced_lines > 0 {
            let tokens = (input, cached, output);
            super::spend::accrue(&mut tx, key, &charged, tokens, self.now()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finished_lines(&self, key: &str) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<i64> =
            sqlx::query_scalar("SELECT line_no FROM batch_results WHERE batch_key = ?")
                .bind(key)
                .fetch_all(self.pool())
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|n| u64::try_from(n).ok())
            .collect())
    }

    async fn results_page(
        &self,
        key: &str,
        ok: bool,
        after_line: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT line_no, line FROM batch_results WHERE batch_key = ? AND ok = ? AND line_no > ? \
             ORDER BY line_no LIMIT ?",
        )
        .bind(key)
        .bind(ok)
        .bind(int(after_line))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get("line_no")?;
                Ok((u64::try_from(n).unwrap_or_default(), r.try_get("line")?))
            })
            .collect()
    }

    async fn finalize_batch(
        &self,
        key: &str,
        t: &Transition,
        output: Option<&FileRecord>,
        error: Option<&FileRecord>,
    ) -> Result<Option<BatchRecord>, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        check_fence(&mut tx, t.lease.as_ref()).await?;
        let row = apply(
            &mut tx,
            key,
            t,
            output.map(|f| f.object.id.as_str()),
            error.map(|f| f.object.id.as_str()),
        )
        .await?;
        if row.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        for file in [output, error].into_iter().flatten() {
            insert_file_on(&mut *tx, file).await?;
        }
        for table in ["batch_results", "batch_chunks"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE batch_key = ?"))
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(row)
    }
}

/// Fails with [`StoreError::LeaseLost`] unless `lease` (when given) still
/// holds its batch. Run first in a write transaction, so nothing the
/// transaction writes can land under a lease that lost the batch.
pub(super) async fn check_fence(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    lease: Option<&Lease>,
) -> Result<(), StoreError> {
    let Some(lease) = lease else { return Ok(()) };
    let held: Option<i64> = match lease.chunk {
        None => {
            sqlx::query_scalar(
                "SELECT 1 FROM batches WHERE key = ? AND lease_owner = ? AND lease_epoch = ?",
            )
            .bind(&lease.key)
            .bind(&lease.owner)
            .bind(lease.epoch)
            .fetch_optional(&mut **tx)
            .await?
        }
        Some(chunk) => {
            sqlx::query_scalar(
                "SELECT 1 FROM batch_chunks WHERE batch_key = ? AND chunk_no = ? \
                 AND lease_owner = ? AND lease_epoch = ?",
            )
            .bind(&lease.key)
            .bind(int(chunk))
            .bind(&lease.owner)
            .bind(lease.epoch)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost),
    }
}

async fn apply(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    key: &str,
    t: &Transition,
    output_file_id: Option<&str>,
    error_file_id: Option<&str>,
) -> Result<Option<BatchRecord>, StoreError> {
    let mut q: QueryBuilder<'_, Sqlite> = QueryBuilder::new("UPDATE batches SET status = ");
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
        .push_bind(key)
        .push(" AND status IN (");
    let mut list = q.separated(", ");
    for s in &t.from {
        list.push_bind(s.as_str());
    }
    q.push(") RETURNING *");
    let row = q.build().fetch_optional(&mut **tx).await?;
    row.map(|r| batch_from_row(&r)).transpose()
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
