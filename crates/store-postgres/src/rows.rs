//! Rows as Postgres returns them (`sqlx::FromRow`), and their records.

use batchgate_core::{
    Batch, BatchCost, BatchStatus, FileObject, FilePurpose, FileStatus, InputTokensDetails,
    OutputTokensDetails, RequestCounts, Usage,
};
use batchgate_store::{
    BatchRecord, FileRecord, KeyRecord, Owner, SpendRow, StoreError, TeamRecord,
};
use rust_decimal::Decimal;

use crate::uint;

/// The columns of a file row, in the order inserts bind them.
pub(crate) const FILE_COLUMNS: &str = "key, public_id, bytes, created_at, filename, purpose, \
     status, expires_at, status_details, deployment_id, model_name, blob_path, upstream_id, \
     owner_key, owner_team";

#[derive(sqlx::FromRow)]
pub(crate) struct FileRow {
    key: String,
    public_id: String,
    bytes: i64,
    created_at: i64,
    filename: String,
    purpose: String,
    status: String,
    expires_at: Option<i64>,
    status_details: Option<String>,
    deployment_id: String,
    model_name: String,
    blob_path: Option<String>,
    upstream_id: Option<String>,
    owner_key: Option<String>,
    owner_team: Option<String>,
}

pub(crate) fn file_status(s: FileStatus) -> &'static str {
    match s {
        FileStatus::Uploaded => "uploaded",
        FileStatus::Processed => "processed",
        FileStatus::Error => "error",
    }
}

impl TryFrom<FileRow> for FileRecord {
    type Error = StoreError;

    fn try_from(r: FileRow) -> Result<FileRecord, StoreError> {
        let purpose = FilePurpose::parse(&r.purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("file purpose {:?}", r.purpose)))?;
        let status = match r.status.as_str() {
            "uploaded" => FileStatus::Uploaded,
            "processed" => FileStatus::Processed,
            "error" => FileStatus::Error,
            other => return Err(StoreError::Corrupt(format!("file status {other:?}"))),
        };
        Ok(FileRecord {
            key: r.key,
            object: FileObject {
                id: r.public_id,
                object: "file".to_string(),
                bytes: uint(r.bytes),
                created_at: r.created_at,
                filename: r.filename,
                purpose,
                status,
                expires_at: r.expires_at,
                status_details: r.status_details,
            },
            deployment_id: r.deployment_id,
            model_name: r.model_name,
            blob_path: r.blob_path,
            upstream_id: r.upstream_id,
            owner: Owner {
                key_id: r.owner_key,
                team_id: r.owner_team,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BatchRow {
    key: String,
    public_id: String,
    endpoint: String,
    model: Option<String>,
    input_file_id: String,
    input_key: String,
    completion_window: String,
    status: String,
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    errors: Option<String>,
    created_at: i64,
    in_progress_at: Option<i64>,
    expires_at: Option<i64>,
    finalizing_at: Option<i64>,
    completed_at: Option<i64>,
    failed_at: Option<i64>,
    expired_at: Option<i64>,
    cancelling_at: Option<i64>,
    cancelled_at: Option<i64>,
    total: i64,
    completed: i64,
    failed: i64,
    metadata: Option<String>,
    input_tokens: i64,
    cached_tokens: i64,
    output_tokens: i64,
    reasoning_tokens: i64,
    cost_input: Decimal,
    cost_output: Decimal,
    priced_lines: i64,
    unpriced_lines: i64,
    deployment_id: String,
    upstream_id: Option<String>,
    output_expires_seconds: Option<i64>,
    owner_key: Option<String>,
    owner_team: Option<String>,
    pub(crate) lease_epoch: i64,
}

impl BatchRow {
    /// OpenAI sends usage once lines have run; before that it is null.
    fn usage(&self, counts: &RequestCounts, status: BatchStatus) -> Option<Usage> {
        let (input, output) = (uint(self.input_tokens), uint(self.output_tokens));
        (counts.completed + counts.failed > 0 || status.is_terminal()).then(|| Usage {
            input_tokens: input,
            input_tokens_details: InputTokensDetails {
                cached_tokens: uint(self.cached_tokens),
            },
            output_tokens: output,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: uint(self.reasoning_tokens),
            },
            total_tokens: input + output,
        })
    }

    /// The batch object's `cost`: gateway-run batches only.
    fn cost(&self) -> Option<BatchCost> {
        self.upstream_id.is_none().then(|| BatchCost {
            currency: "USD".into(),
            total: (self.cost_input + self.cost_output).normalize().to_string(),
            input: self.cost_input.normalize().to_string(),
            output: self.cost_output.normalize().to_string(),
            priced_lines: uint(self.priced_lines),
            unpriced_lines: uint(self.unpriced_lines),
        })
    }
}

impl TryFrom<BatchRow> for BatchRecord {
    type Error = StoreError;

    fn try_from(r: BatchRow) -> Result<BatchRecord, StoreError> {
        let status = BatchStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(format!("batch status {:?}", r.status)))?;
        let request_counts = RequestCounts {
            total: uint(r.total),
            completed: uint(r.completed),
            failed: uint(r.failed),
        };
        let usage = r.usage(&request_counts, status);
        let cost = r.cost();
        Ok(BatchRecord {
            key: r.key,
            batch: Batch {
                id: r.public_id,
                object: "batch".to_string(),
                endpoint: r.endpoint,
                model: r.model,
                errors: from_json("errors", r.errors)?,
                input_file_id: r.input_file_id,
                completion_window: r.completion_window,
                status,
                output_file_id: r.output_file_id,
                error_file_id: r.error_file_id,
                created_at: r.created_at,
                in_progress_at: r.in_progress_at,
                expires_at: r.expires_at,
                finalizing_at: r.finalizing_at,
                completed_at: r.completed_at,
                failed_at: r.failed_at,
                expired_at: r.expired_at,
                cancelling_at: r.cancelling_at,
                cancelled_at: r.cancelled_at,
                request_counts,
                metadata: from_json("metadata", r.metadata)?,
                usage,
                cost,
            },
            deployment_id: r.deployment_id,
            input_key: r.input_key,
            upstream_id: r.upstream_id,
            output_expires_seconds: r.output_expires_seconds.and_then(|n| u64::try_from(n).ok()),
            owner: Owner {
                key_id: r.owner_key,
                team_id: r.owner_team,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    key_id: String,
    key_hash: String,
    key_alias: Option<String>,
    team_id: Option<String>,
    models: Vec<String>,
    max_budget: Option<Decimal>,
    budget_duration: Option<String>,
    budget_seconds: Option<i64>,
    budget_reset_at: Option<i64>,
    spend: Decimal,
    metadata: String,
    created_at: i64,
    blocked: bool,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;

    fn try_from(r: KeyRow) -> Result<KeyRecord, StoreError> {
        Ok(KeyRecord {
            key_id: r.key_id,
            key_hash: r.key_hash,
            key_alias: r.key_alias,
            team_id: r.team_id,
            models: r.models,
            max_budget: r.max_budget.map(|d| d.normalize()),
            budget_duration: r.budget_duration,
            budget_seconds: r.budget_seconds,
            budget_reset_at: r.budget_reset_at,
            spend: r.spend.normalize(),
            metadata: serde_json::from_str(&r.metadata)
                .map_err(|e| StoreError::Corrupt(format!("keys.metadata: {e}")))?,
            created_at: r.created_at,
            blocked: r.blocked,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TeamRow {
    team_id: String,
    team_alias: Option<String>,
    max_budget: Option<Decimal>,
    budget_duration: Option<String>,
    budget_seconds: Option<i64>,
    budget_reset_at: Option<i64>,
    spend: Decimal,
    created_at: i64,
}

impl From<TeamRow> for TeamRecord {
    fn from(r: TeamRow) -> TeamRecord {
        TeamRecord {
            team_id: r.team_id,
            team_alias: r.team_alias,
            max_budget: r.max_budget.map(|d| d.normalize()),
            budget_duration: r.budget_duration,
            budget_seconds: r.budget_seconds,
            budget_reset_at: r.budget_reset_at,
            spend: r.spend.normalize(),
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SpendLogRow {
    batch_id: String,
    key_id: Option<String>,
    team_id: Option<String>,
    model: String,
    deployment_id: String,
    day: String,
    created_at: i64,
    lines: i64,
    input_tokens: i64,
    cached_tokens: i64,
    output_tokens: i64,
    cost: Decimal,
    priced_lines: i64,
    unpriced_lines: i64,
}

impl From<SpendLogRow> for SpendRow {
    fn from(r: SpendLogRow) -> SpendRow {
        SpendRow {
            batch_id: r.batch_id,
            key_id: r.key_id,
            team_id: r.team_id,
            model: r.model,
            deployment_id: r.deployment_id,
            day: r.day,
            created_at: r.created_at,
            lines: uint(r.lines),
            input_tokens: uint(r.input_tokens),
            cached_tokens: uint(r.cached_tokens),
            output_tokens: uint(r.output_tokens),
            spend: r.cost.normalize(),
            priced_lines: uint(r.priced_lines),
            unpriced_lines: uint(r.unpriced_lines),
        }
    }
}

/// JSON kept as text, for a column that holds it.
pub(crate) fn to_json<T: serde::Serialize>(v: &Option<T>) -> Result<Option<String>, StoreError> {
    v.as_ref()
        .map(|v| serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn from_json<T: serde::de::DeserializeOwned>(
    col: &str,
    text: Option<String>,
) -> Result<Option<T>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}
