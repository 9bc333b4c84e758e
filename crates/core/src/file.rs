//! The File object of OpenAI's Files API.

use serde::{Deserialize, Serialize};

/// What a file is for. Uploads may use only [`FilePurpose::is_uploadable`] ones;
/// the `*_output`/`*_results` purposes appear on files the gateway writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilePurpose {
    Assistants,
    AssistantsOutput,
    Batch,
    BatchOutput,
    #[serde(rename = "fine-tune")]
    FineTune,
    #[serde(rename = "fine-tune-results")]
    FineTuneResults,
    Vision,
    UserData,
    Evals,
}

impl FilePurpose {
    /// Every purpose, in the order used in error messages.
    pub const ALL: [FilePurpose; 9] = [
        FilePurpose::Assistants,
        FilePurpose::AssistantsOutput,
        FilePurpose::Batch,
        FilePurpose::BatchOutput,
        FilePurpose::FineTune,
        FilePurpose::FineTuneResults,
        FilePurpose::Vision,
        FilePurpose::UserData,
        FilePurpose::Evals,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FilePurpose::Assistants => "assistants",
            FilePurpose::AssistantsOutput => "assistants_output",
            FilePurpose::Batch => "batch",
            FilePurpose::BatchOutput => "batch_output",
            FilePurpose::FineTune => "fine-tune",
            FilePurpose::FineTuneResults => "fine-tune-results",
            FilePurpose::Vision => "vision",
            FilePurpose::UserData => "user_data",
            FilePurpose::Evals => "evals",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<FilePurpose> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether a client may upload a file with this purpose.
    pub fn is_uploadable(self) -> bool {
        matches!(
            self,
            FilePurpose::Assistants
                | FilePurpose::Batch
                | FilePurpose::FineTune
                | FilePurpose::Vision
                | FilePurpose::UserData
                | FilePurpose::Evals
        )
    }
}

impl std::fmt::Display for FilePurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `uploaded | processed | error`. The gateway answers `processed` once a file
/// is durably stored, so `files.wait_for_processing()` returns at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Uploaded,
    Processed,
    Error,
}

/// `expires_after` of an upload: the file expires `seconds` after `anchor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiresAfter {
    /// Only `created_at` exists today.
    pub anchor: String,
    pub seconds: u64,
}

impl ExpiresAfter {
    /// The range OpenAI accepts: one hour to thirty days.
    pub const SECONDS_RANGE: std::ops::RangeInclusive<u64> = 3600..=2_592_000;
}

/// OpenAI's File object. Every required key is always serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileObject {
    pub id: String,
    pub object: String,
    pub bytes: u64,
    pub created_at: i64,
    pub filename: String,
    pub purpose: FilePurpose,
    pub status: FileStatus,
    pub expires_at: Option<i64>,
    pub status_details: Option<String>,
}

impl FileObject {
    /// A processed file with no expiry.
    pub fn new(
        id: &str,
        bytes: u64,
        created_at: i64,
        filename: &str,
        purpose: FilePurpose,
    ) -> Self {
        FileObject {
            id: id.to_string(),
            object: "file".to_string(),
            bytes,
            created_at,
            filename: filename.to_string(),
            purpose,
            status: FileStatus::Processed,
            expires_at: None,
            status_details: None,
        }
    }
}

/// The answer to `DELETE /v1/files/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedFile {
    pub id: String,
    pub object: String,
    pub deleted: bool,
}

impl DeletedFile {
    pub fn new(id: &str) -> Self {
        DeletedFile {
            id: id.to_string(),
            object: "file".to_string(),
            deleted: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_round_trip_through_their_wire_names() {
        for p in FilePurpose::ALL {
            assert_eq!(FilePurpose::parse(p.as_str()), Some(p));
            let json = serde_json::to_string(&p).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert_eq!(FilePurpose::parse("nonsense"), None);
        assert!(!FilePurpose::BatchOutput.is_uploadable());
    }
}
