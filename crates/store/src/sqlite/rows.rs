//! Batch rows in and out of SQLite: how a [`BatchRecord`] is written and
//! read back, shared by the batch, chunk and journal code.

use batchgate_core::{
    Batch, BatchErrors, BatchStatus, InputTokensDetails, OutputTokensDetails, RequestCounts, Usage,
};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::SqliteStore;
use crate::{BatchRecord, Owner, StoreError};

pub(super) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn uint(r: &SqliteRow, col: &str) -> Result<u64, StoreError> {
    let n: i64 = r.try_get(col)?;
    Ok(u64::try_from(n).unwrap_or_default())
}

pub(super) fn to_json<T: serde::Serialize>(v: &Option<T>) -> Result<Option<String>, StoreError> {
    v.as_ref()
        .map(|v| serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    r: &SqliteRow,
    col: &str,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = r.try_get(col)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}

pub(super) fn batch_from_row(r: &SqliteRow) -> Result<BatchRecord, StoreError> {
    let status: String = r.try_get("status")?;
    let status = BatchStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("batch status {status:?}")))?;
    let counts = RequestCounts {
        total: uint(r, "total")?,
        completed: uint(r, "completed")?,
        failed: uint(r, "failed")?,
    };
    let (input, output) = (uint(r, "input_tokens")?, uint(r, "output_tokens")?);
    // OpenAI sends usage once lines have run; before that it is null.
    let usage = (counts.completed + counts.failed > 0 || status.is_terminal()).then(|| Usage {
        input_tokens: input,
        input_tokens_details: InputTokensDetails {
            cached_tokens: uint(r, "cached_tokens").unwrap_or_default(),
        },
        output_tokens: output,
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: uint(r, "reasoning_tokens").unwrap_or_default(),
        },
        total_tokens: input + output,
    });
    let output_expires: Option<i64> = r.try_get("output_expires_seconds")?;
    let upstream: Option<String> = r.try_get("upstream_id")?;
    let cost = match upstream {
        Some(_) => None,
        None => Some(super::spend::batch_cost(r)?),
    };
    let errors: Option<BatchErrors> = from_json(r, "errors")?;
    Ok(BatchRecord {
        key: r.try_get("key")?,
        batch: Batch {
            id: r.try_get("public_id")?,
            object: "batch".to_string(),
            endpoint: r.try_get("endpoint")?,
            model: r.try_get("model")?,
            errors,
            input_file_id: r.try_get("input_file_id")?,
            completion_window: r.try_get("completion_window")?,
            status,
            output_file_id: r.try_get("output_file_id")?,
            error_file_id: r.try_get("error_file_id")?,
            created_at: r.try_get("created_at")?,
            in_progress_at: r.try_get("in_progress_at")?,
            expires_at: r.try_get("expires_at")?,
            finalizing_at: r.try_get("finalizing_at")?,
            completed_at: r.try_get("completed_at")?,
            failed_at: r.try_get("failed_at")?,
            expired_at: r.try_get("expired_at")?,
            cancelling_at: r.try_get("cancelling_at")?,
            cancelled_at: r.try_get("cancelled_at")?,
            request_counts: counts,
            metadata: from_json(r, "metadata")?,
            usage,
            cost,
        },
        deployment_id: r.try_get("deployment_id")?,
        input_key: r.try_get("input_key")?,
        upstream_id: r.try_get("upstream_id")?,
        output_expires_seconds: output_expires.and_then(|n| u64::try_from(n).ok()),
        owner: Owner {
            key_id: r.try_get("owner_key")?,
            team_id: r.try_get("owner_team")?,
        },
    })
}

impl SqliteStore {
    /// Inserts a batch row; with `require_input`, only if its input file
    /// row exists (checked in the same statement).
    pub(super) async fn insert_row(
        &self,
        r: &BatchRecord,
        require_input: bool,
    ) -> Result<bool, StoreError> {
        let b = &r.batch;

        let done = sqlx::query(
            "INSERT INTO batches (key, public_id, endpoint, model, input_file_id, input_key, \
             completion_window, status, output_file_id, error_file_id, errors, created_at, expires_at, \
             total, completed, failed, metadata, deployment_id, upstream_id, output_expires_seconds, \
             owner_key, owner_team, in_progress_at, finalizing_at, completed_at, failed_at, expired_at, \
             cancelling_at, cancelled_at, input_tokens, cached_tokens, output_tokens, reasoning_tokens) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
             WHERE ? OR EXISTS (SELECT 1 FROM files WHERE key = ?)",
        )
        .bind(&r.key)
        .bind(&b.id)
        .bind(&b.endpoint)
        .bind(&b.model)
        .bind(&b.input_file_id)
        .bind(&r.input_key)
        .bind(&b.completion_window)
        .bind(b.status.as_str())
        .bind(&b.output_file_id)
        .bind(&b.error_file_id)
        .bind(to_json(&b.errors)?)
        .bind(b.created_at)
        .bind(b.expires_at)
        .bind(int(b.request_counts.total))
        .bind(int(b.request_counts.completed))
        .bind(int(b.request_counts.failed))
        .bind(to_json(&b.metadata)?)
        .bind(&r.deployment_id)
        .bind(&r.upstream_id)
        .bind(r.output_expires_seconds.map(int))
        .bind(&r.owner.key_id)
        .bind(&r.owner.team_id)
        .bind(b.in_progress_at)
        .bind(b.finalizing_at)
        .bind(b.completed_at)
        .bind(b.failed_at)
        .bind(b.expired_at)
        .bind(b.cancelling_at)
        .bind(b.cancelled_at)
        .bind(int(b.usage.map_or(0, |u| u.input_tokens)))
        .bind(int(b.usage.map_or(0, |u| u.input_tokens_details.cached_tokens)))
        .bind(int(b.usage.map_or(0, |u| u.output_tokens)))
        .bind(int(b.usage.map_or(0, |u| u.output_tokens_details.reasoning_tokens)))
        .bind(!require_input)
        .bind(&r.input_key)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
