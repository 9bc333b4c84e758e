//! The contract of batchgate: the OpenAI-shaped objects of the Files and Batch
//! APIs, the OpenAI error envelope, and the two traits every provider adapter
//! implements ([`FileApi`] and [`BatchApi`]). The HTTP layer only ever talks to
//! providers through these traits, so this crate is also the public embedding
//! API. It performs no I/O.
//!
//! ```
//! use batchgate_core::{ApiError, FileObject, FilePurpose, FileStatus};
//!
//! let file = FileObject::new("file-abc", 120, 1_700_000_000, "requests.jsonl", FilePurpose::Batch);
//! assert_eq!(file.status, FileStatus::Processed);
//! let json = serde_json::to_value(&file).unwrap();
//! assert_eq!(json["object"], "file");
//! assert!(json["expires_at"].is_null());
//!
//! let err = ApiError::not_found("file", "file-nope");
//! assert_eq!(err.status, 404);
//! assert_eq!(serde_json::to_value(err.envelope()).unwrap()["error"]["type"], "invalid_request_error");
//! ```

mod batch;
mod deployment;
mod error;
mod file;
mod list;
mod provider;
mod upstream;

pub use batch::{
    Batch, BatchCost, BatchError, BatchErrors, BatchStatus, CreateBatchRequest, InputTokensDetails,
    OutputExpiresAfter, OutputTokensDetails, RequestCounts, Usage,
};
pub use deployment::{BatchApiMode, Deployment};
pub use error::{ApiError, ErrorBody, ErrorEnvelope};
pub use file::{DeletedFile, ExpiresAfter, FileObject, FilePurpose, FileStatus};
pub use list::{ListOrder, ListPage, ListQuery};
pub use provider::{
    BatchApi, ByteStream, Caller, FileApi, FileContent, ObjectRef, Provider, RequestCtx, Upload,
};
pub use upstream::{Reply, ServerLoad, TokenUsage, Upstream};
