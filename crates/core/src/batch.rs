//! The Batch object of OpenAI's Batch API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A batch's lifecycle:
/// `validating → in_progress → finalizing → completed`, `validating → failed`,
/// `in_progress → expired`, and `… → cancelling → cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Validating,
    Failed,
    InProgress,
    Finalizing,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 8] = [
        BatchStatus::Validating,
        BatchStatus::Failed,
        BatchStatus::InProgress,
        BatchStatus::Finalizing,
        BatchStatus::Completed,
        BatchStatus::Expired,
        BatchStatus::Cancelling,
        BatchStatus::Cancelled,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Validating => "validating",
            BatchStatus::Failed => "failed",
            BatchStatus::InProgress => "in_progress",
            BatchStatus::Finalizing => "finalizing",
            BatchStatus::Completed => "completed",
            BatchStatus::Expired => "expired",
            BatchStatus::Cancelling => "cancelling",
            BatchStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<BatchStatus> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// No further transition happens from a terminal status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchStatus::Failed
                | BatchStatus::Completed
                | BatchStatus::Expired
                | BatchStatus::Cancelled
        )
    }
}

/// `{"total","completed","failed"}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

/// Token totals over every successful line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

/// One entry of `errors.data`. `line` is 1-based, as an editor shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    pub line: Option<u64>,
}

/// `{"object":"list","data":[BatchError]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchErrors {
    pub object: String,
    pub data: Vec<BatchError>,
}

impl BatchErrors {
    pub fn new(data: Vec<BatchError>) -> Self {
        BatchErrors {
            object: "list".to_string(),
            data,
        }
    }
}

/// OpenAI's Batch object, every key present (nulls included) like the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub object: String,
    pub endpoint: String,
    pub model: Option<String>,
    pub errors: Option<BatchErrors>,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: BatchStatus,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub created_at: i64,
    pub in_progress_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub finalizing_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub cancelling_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub request_counts: RequestCounts,
    pub metadata: Option<BTreeMap<String, String>>,
    pub usage: Option<Usage>,
    /// batchgate's extension: what the batch has cost so far. Present on
    /// every batch the gateway runs, from its creation (zero) on. A batch
    /// forwarded to an upstream's own batch API carries what the upstream
    /// reports, if anything (another batchgate does; OpenAI does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<BatchCost>,
}

/// The cost of a batch's successful lines. Amounts are exact decimal
/// strings (e.g. `"0.000021"`), so no client reads them as floats by
/// accident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCost {
    pub currency: String,
    pub total: String,
    pub input: String,
    pub output: String,
    /// Lines of a model with configured prices.
    pub priced_lines: u64,
    /// Lines of a model without prices: they cost zero, reported here.
    pub unpriced_lines: u64,
}

impl BatchCost {
    /// The cost of a batch none of whose lines has finished.
    pub fn zero() -> BatchCost {
        BatchCost {
            currency: "USD".to_string(),
            total: "0".to_string(),
            input: "0".to_string(),
            output: "0".to_string(),
            priced_lines: 0,
            unpriced_lines: 0,
        }
    }
}

/// `expires_after` for the output and error files of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputExpiresAfter {
    pub anchor: String,
    pub seconds: u64,
}

/// The body of `POST /v1/batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBatchRequest {
    pub input_file_id: String,
    pub endpoint: String,
    pub completion_window: String,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub output_expires_after: Option<OutputExpiresAfter>,
}

impl CreateBatchRequest {
    pub const MAX_METADATA_PAIRS: usize = 16;
    pub const MAX_METADATA_KEY: usize = 64;
    pub const MAX_METADATA_VALUE: usize = 512;

    /// Checks the limits OpenAI documents for `metadata`.
    pub fn validate_metadata(&self) -> Result<(), crate::ApiError> {
        let Some(meta) = &self.metadata else {
            return Ok(());
        };
        if meta.len() > Self::MAX_METADATA_PAIRS {
            return Err(crate::ApiError::invalid_request(format!(
                "metadata may hold at most {} pairs, got {}",
                Self::MAX_METADATA_PAIRS,
                meta.len()
            ))
            .with_param("metadata"));
        }
        for (k, v) in meta {
            if k.chars().count() > Self::MAX_METADATA_KEY {
                return Err(crate::ApiError::invalid_request(format!(
                    "metadata key '{k}' is longer than {} characters",
                    Self::MAX_METADATA_KEY
                ))
                .with_param("metadata"));
            }
            if v.chars().count() > Self::MAX_METADATA_VALUE {
                return Err(crate::ApiError::invalid_request(format!(
                    "metadata value of '{k}' is longer than {} characters",
                    Self::MAX_METADATA_VALUE
                ))
                .with_param("metadata"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_serializes_every_key_including_nulls() {
        let b = Batch {
            id: "batch_x".into(),
            object: "batch".into(),
            endpoint: "/v1/chat/completions".into(),
            model: None,
            errors: None,
            input_file_id: "file-x".into(),
            completion_window: "24h".into(),
            status: BatchStatus::Validating,
            output_file_id: None,
            error_file_id: None,
            created_at: 1,
            in_progress_at: None,
            expires_at: None,
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            request_counts: RequestCounts::default(),
            metadata: None,
            usage: None,
            cost: None,
        };
        let v = serde_json::to_value(&b).unwrap_or_default();
        let keys = [
            "id",
            "object",
            "endpoint",
            "model",
            "errors",
            "input_file_id",
            "completion_window",
            "status",
            "output_file_id",
            "error_file_id",
            "created_at",
            "in_progress_at",
            "expires_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
            "request_counts",
            "metadata",
            "usage",
        ];
        for k in keys {
            assert!(v.get(k).is_some(), "missing key {k}");
        }
        assert_eq!(v["status"], "validating");
    }

    #[test]
    fn metadata_limits_are_enforced() {
        let mut req = CreateBatchRequest {
            input_file_id: "f".into(),
            endpoint: "/v1/chat/completions".into(),
            completion_window: "24h".into(),
            metadata: Some((0..17).map(|i| (i.to_string(), "v".into())).collect()),
            output_expires_after: None,
        };
        assert!(req.validate_metadata().is_err());
        req.metadata = Some([("k".repeat(65), "v".into())].into());
        assert!(req.validate_metadata().is_err());
        req.metadata = Some([("k".into(), "v".repeat(513))].into());
        assert!(req.validate_metadata().is_err());
        req.metadata = Some([("k".repeat(64), "v".repeat(512))].into());
        assert!(req.validate_metadata().is_ok());
    }
}
