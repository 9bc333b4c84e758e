//! Rows the store tests write.
#![allow(dead_code)]

use batchgate_core::{Batch, BatchStatus, FileObject, FilePurpose, RequestCounts};
use batchgate_store::{BatchRecord, FileRecord, Owner};

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
