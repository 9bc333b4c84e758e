//! `BatchStore` for Postgres: batch rows and listings here; claims and
//! transitions in `leases`, the journal in `journal`.

use async_trait::async_trait;
use batchgate_core::{BatchStatus, Caller};
use batchgate_store::{
    BatchRecord, BatchStats, BatchStore, FileRecord, Lease, LeaseHolder, LineResult, Page,
    StoreError, Transition,
};
use sqlx::{Postgres, QueryBuilder};

use crate::files::{empty_page, input_in_use, page_of};
use crate::rows::{to_json, BatchRow};
use crate::{int, push_visible_to, uint, PostgresStore};

const BATCH_COLUMNS: &str = "key, public_id, endpoint, model, input_file_id, input_key, \
     completion_window, status, output_file_id, error_file_id, errors, created_at, expires_at, \
     total, completed, failed, metadata, deployment_id, upstream_id, output_expires_seconds, \
     owner_key, owner_team, in_progress_at, finalizing_at, completed_at, failed_at, expired_at, \
     cancelling_at, cancelled_at, input_tokens, cached_tokens, output_tokens, reasoning_tokens";

/// What a forwarded batch's refresh changes; ownership and routing keep
/// their first values.
const FORWARDED_REFRESH: &str = "status, output_file_id, error_file_id, errors, in_progress_at, \
     expires_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at, \
     total, completed, failed, input_tokens, cached_tokens, output_tokens, reasoning_tokens";

#[async_trait]
impl BatchStore for PostgresStore {
    async fn insert_batch(&self, r: &BatchRecord) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        // A share lock on the input's row: a concurrent delete either
        // committed first (no row: nothing is created) or waits for this
        // transaction and then finds the batch (the file stays).
        let input: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM files WHERE key = $1 FOR KEY SHARE")
                .bind(&r.input_key)
                .fetch_optional(&mut *tx)
                .await?;
        if input.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_query(r, "")?.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn upsert_forwarded_batch(&self, r: &BatchRecord) -> Result<(), StoreError> {
        let refresh: Vec<String> = FORWARDED_REFRESH
            .split(", ")
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let conflict = format!(" ON CONFLICT (key) DO UPDATE SET {}", refresh.join(", "));
        insert_query(r, &conflict)?
            .build()
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn get_batch(&self, key: &str) -> Result<Option<BatchRecord>, StoreError> {
        let row: Option<BatchRow> = sqlx::query_as("SELECT * FROM batches WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.map(BatchRecord::try_from).transpose()
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
                let mut q: QueryBuilder<'_, Postgres> =
                    QueryBuilder::new("SELECT seq FROM batches WHERE key = ");
                q.push_bind(key.to_string());
                push_visible_to(&mut q, caller);
                match q.build_query_scalar().fetch_optional(self.pool()).await? {
                    Some(seq) => Some(seq),
                    None => return Ok(empty_page()),
                }
            }
        };
        let mut q: QueryBuilder<'_, Postgres> =
            QueryBuilder::new("SELECT * FROM batches WHERE TRUE");
        push_visible_to(&mut q, caller);
        if let Some(model) = model_name {
            q.push(" AND model = ").push_bind(model.to_string());
        }
        if let Some(seq) = cursor {
            q.push(" AND seq < ").push_bind(seq);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows: Vec<BatchRow> = q.build_query_as().fetch_all(self.pool()).await?;
        page_of(rows, limit)
    }

    async fn batch_stats(&self) -> Result<BatchStats, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM batches GROUP BY status")
                .fetch_all(self.pool())
                .await?;
        let by_status = rows
            .into_iter()
            .filter_map(|(s, n)| Some((BatchStatus::parse(&s)?, uint(n))))
            .collect();
        // SUM of BIGINT is NUMERIC in Postgres; back to BIGINT for sqlx.
        let pending: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(total - completed - failed), 0)::BIGINT FROM batches \
             WHERE status = 'in_progress' AND upstream_id IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(BatchStats {
            by_status,
            pending_lines: uint(pending),
        })
    }

    async fn lease_holders(&self, now: i64) -> Result<Vec<LeaseHolder>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT lease_owner, COUNT(*), MAX(lease_until) FROM batches \
             WHERE lease_owner IS NOT NULL AND lease_until >= $1 GROUP BY lease_owner ORDER BY lease_owner",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(owner, n, until)| LeaseHolder {
                owner,
                batches: uint(n),
                lease_until: until,
            })
            .collect())
    }

    async fn file_in_use(&self, file_key: &str) -> Result<bool, StoreError> {
        input_in_use(self.pool(), file_key).await
    }

    async fn claim_batch(
        &self,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<(BatchRecord, Lease)>, StoreError> {
        self.claim(owner, now, until).await
    }

    async fn renew_lease(&self, lease: &Lease, until: i64) -> Result<bool, StoreError> {
        self.renew(lease, until).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.release(lease).await
    }

    async fn release_leases(&self, owner: &str) -> Result<(), StoreError> {
        self.release_all(owner).await
    }

    async fn transition(
        &self,
        key: &str,
        t: &Transition,
    ) -> Result<Option<BatchRecord>, StoreError> {
        self.move_batch(key, t).await
    }

    async fn record_results(
        &self,
        lease: &Lease,
        results: &[LineResult],
    ) -> Result<(), StoreError> {
        self.journal(lease, results).await
    }

    async fn finished_lines(&self, key: &str) -> Result<Vec<u64>, StoreError> {
        self.journaled_lines(key).await
    }

    async fn results_page(
        &self,
        key: &str,
        ok: bool,
        after_line: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        self.journal_page(key, ok, after_line, limit).await
    }

    async fn finalize_batch(
        &self,
        key: &str,
        t: &Transition,
        output: Option<&FileRecord>,
        error: Option<&FileRecord>,
    ) -> Result<Option<BatchRecord>, StoreError> {
        self.finalize(key, t, output, error).await
    }
}

/// `INSERT INTO batches … VALUES (…)` for `r`, then `tail`.
fn insert_query<'a>(
    r: &'a BatchRecord,
    tail: &str,
) -> Result<QueryBuilder<'a, Postgres>, StoreError> {
    let b = &r.batch;
    let usage = |f: fn(&batchgate_core::Usage) -> u64| int(b.usage.as_ref().map_or(0, f));
    let mut q = QueryBuilder::new(format!("INSERT INTO batches ({BATCH_COLUMNS}) VALUES ("));
    let mut v = q.separated(", ");
    v.push_bind(&r.key)
        .push_bind(&b.id)
        .push_bind(&b.endpoint)
        .push_bind(&b.model)
        .push_bind(&b.input_file_id)
        .push_bind(&r.input_key)
        .push_bind(&b.completion_window)
        .push_bind(b.status.as_str())
        .push_bind(&b.output_file_id)
        .push_bind(&b.error_file_id)
        .push_bind(to_json(&b.errors)?)
        .push_bind(b.created_at)
        .push_bind(b.expires_at)
        .push_bind(int(b.request_counts.total))
        .push_bind(int(b.request_counts.completed))
        .push_bind(int(b.request_counts.failed))
        .push_bind(to_json(&b.metadata)?)
        .push_bind(&r.deployment_id)
        .push_bind(&r.upstream_id)
        .push_bind(r.output_expires_seconds.map(int))
        .push_bind(&r.owner.key_id)
        .push_bind(&r.owner.team_id)
        .push_bind(b.in_progress_at)
        .push_bind(b.finalizing_at)
        .push_bind(b.completed_at)
        .push_bind(b.failed_at)
        .push_bind(b.expired_at)
        .push_bind(b.cancelling_at)
        .push_bind(b.cancelled_at)
        .push_bind(usage(|u| u.input_tokens))
        .push_bind(usage(|u| u.input_tokens_details.cached_tokens))
        .push_bind(usage(|u| u.output_tokens))
        .push_bind(usage(|u| u.output_tokens_details.reasoning_tokens));
    q.push(")").push(tail);
    Ok(q)
}
