//! Rows the store tests write (the conformance suite, and backend tests
//! of their own).

use crate::{BatchRecord, FileRecord, KeyRecord, LineCharge, LineResult, LineUsage, Owner};
use batchgate_core::{Batch, BatchStatus, FileObject, FilePurpose, RequestCounts};

pub fn file(key: &str) -> FileRecord {
    FileRecord {
        key: key.to_string(),
        object: FileObject::new(&format!("file-{key}"), 3, 1, "in.jsonl", FilePurpose::Batch),
        deployment_id: "dep".into(),
        model_name: "m".into(),
        blob_path: Some(format!("files/{key}")),
        upstream_id: None,
        owner: Owner::default(),
    }
}

pub fn batch(key: &str, input_key: &str) -> BatchRecord {
    BatchRecord {
        key: key.to_string(),
        batch: Batch {
            id: format!("batch_{key}"),
            object: "batch".into(),
            endpoint: "/v1/chat/completions".into(),
            model: Some("m".into()),
            errors: None,
            input_file_id: format!("file-{input_key}"),
            completion_window: "24h".into(),
            status: BatchStatus::Validating,
            output_file_id: None,
            error_file_id: None,
            created_at: 1,
            in_progress_at: None,
            expires_at: Some(1_000_000),
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
        },
        deployment_id: "dep".into(),
        input_key: input_key.to_string(),
        upstream_id: None,
        output_expires_seconds: None,
        owner: Owner::default(),
    }
}

/// A key of `team` with no budget and no spend.
pub fn key(id: &str, team: Option<&str>) -> KeyRecord {
    KeyRecord {
        key_id: id.into(),
        key_hash: format!("hash-{id}"),
        key_alias: None,
        team_id: team.map(str::to_string),
        models: vec![],
        max_budget: None,
        budget_duration: None,
        budget_seconds: None,
        budget_reset_at: None,
        spend: rust_decimal::Decimal::ZERO,
        metadata: serde_json::json!({}),
        created_at: 1,
        blocked: false,
    }
}

/// A successful line that used 10 input and 5 output tokens and costs
/// 0.01 + 0.02.
pub fn charged(line_no: u64) -> LineResult {
    LineResult {
        line_no,
        custom_id: format!("c{line_no}"),
        ok: true,
        line: format!("{{\"custom_id\":\"c{line_no}\"}}"),
        usage: Some(LineUsage {
            input_tokens: 10,
            cached_tokens: 0,
            output_tokens: 5,
            reasoning_tokens: 0,
        }),
        charge: Some(LineCharge {
            input: rust_decimal::Decimal::new(1, 2),
            output: rust_decimal::Decimal::new(2, 2),
            priced: true,
        }),
    }
}
