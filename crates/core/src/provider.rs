//! The traits provider adapters implement, and the values passed through them.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::{
    ApiError, Batch, CreateBatchRequest, DeletedFile, Deployment, ExpiresAfter, FileObject,
    FilePurpose, ListPage, ListQuery,
};

/// A body streamed in chunks; never a whole file in memory.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Who is calling. The master key sees everything; virtual keys see what they
/// or their team own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// Stable identifier of the virtual key (never the key itself).
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    pub is_master: bool,
    /// Model names this caller may use; empty means every model.
    pub models: Vec<String>,
}

impl Caller {
    /// The operator, holding the master key.
    pub fn master() -> Self {
        Caller {
            key_id: None,
            team_id: None,
            is_master: true,
            models: Vec::new(),
        }
    }

    /// Whether this caller may use `model_name`.
    pub fn may_use(&self, model_name: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model_name)
    }
}

/// Per-request context handed to every provider call.
#[derive(Debug, Clone, Default)]
pub struct RequestCtx {
    /// The `x-request-id` of the HTTP request, for logs and upstream calls.
    pub request_id: String,
    pub caller: Caller,
}

/// An existing object, already routed: the HTTP layer decoded and verified its
/// public ID and found the deployment it pins.
#[derive(Debug, Clone)]
pub struct ObjectRef {
    /// The ID the client sent (and will keep seeing).
    pub public_id: String,
    /// The gateway's own key for the object in its store.
    pub local_key: String,
    /// The upstream's ID when the object lives on the upstream.
    pub upstream_id: Option<String>,
    pub deployment: Arc<Deployment>,
}

/// A file upload in flight: metadata plus the streamed bytes.
pub struct Upload {
    pub filename: String,
    pub purpose: FilePurpose,
    pub expires_after: Option<ExpiresAfter>,
    pub body: ByteStream,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("filename", &self.filename)
            .field("purpose", &self.purpose)
            .field("expires_after", &self.expires_after)
            .finish_non_exhaustive()
    }
}

/// A file's bytes, streamed.
pub struct FileContent {
    /// Length when known (sent as `Content-Length`).
    pub bytes: Option<u64>,
    pub body: ByteStream,
}

impl std::fmt::Debug for FileContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileContent")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// OpenAI's Files API, as one provider serves it.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use batchgate_core::*;
///
/// /// A provider that stores nothing: every lookup is "not found".
/// struct Empty;
///
/// #[async_trait]
/// impl FileApi for Empty {
///     async fn create_file(&self, _: &RequestCtx, _: &Arc<Deployment>, _: Upload) -> Result<FileObject, ApiError> {
///         Err(ApiError::invalid_request("read-only"))
///     }
///     async fn retrieve_file(&self, _: &RequestCtx, f: &ObjectRef) -> Result<FileObject, ApiError> {
///         Err(ApiError::not_found("file", &f.public_id))
///     }
///     async fn file_content(&self, _: &RequestCtx, f: &ObjectRef) -> Result<FileContent, ApiError> {
///         Err(ApiError::not_found("file", &f.public_id))
///     }
///     async fn delete_file(&self, _: &RequestCtx, f: &ObjectRef) -> Result<DeletedFile, ApiError> {
///         Err(ApiError::not_found("file", &f.public_id))
///     }
/// }
/// ```
#[async_trait]
pub trait FileApi: Send + Sync {
    /// Stores an upload for `deployment` and returns its File object, whose
    /// ID routes back to `deployment`. The object must become visible only
    /// once the bytes are durable.
    async fn create_file(
        &self,
        ctx: &RequestCtx,
        deployment: &Arc<Deployment>,
        upload: Upload,
    ) -> Result<FileObject, ApiError>;

    async fn retrieve_file(
        &self,
        ctx: &RequestCtx,
        file: &ObjectRef,
    ) -> Result<FileObject, ApiError>;

    /// Streams the file's bytes.
    async fn file_content(
        &self,
        ctx: &RequestCtx,
        file: &ObjectRef,
    ) -> Result<FileContent, ApiError>;

    /// Removes metadata and bytes.
    async fn delete_file(
        &self,
        ctx: &RequestCtx,
        file: &ObjectRef,
    ) -> Result<DeletedFile, ApiError>;

    /// Lists the files of one deployment. Providers whose files all live in
    /// the gateway's catalog need not implement it: the HTTP layer lists
    /// the catalog when no deployment is named.
    async fn list_files(
        &self,
        _ctx: &RequestCtx,
        deployment: &Arc<Deployment>,
        _query: &ListQuery,
    ) -> Result<ListPage<FileObject>, ApiError> {
        Err(ApiError::invalid_request(format!(
            "listing files of model '{}' is not supported by this provider",
            deployment.model_name
        )))
    }
}

/// OpenAI's Batch API, as one provider serves it.
#[async_trait]
pub trait BatchApi: Send + Sync {
    /// Creates a batch over `input` (an uploaded file of this provider).
    /// Returns it in `validating`; input problems surface later as `failed`.
    async fn create_batch(
        &self,
        ctx: &RequestCtx,
        input: &ObjectRef,
        request: CreateBatchRequest,
    ) -> Result<Batch, ApiError>;

    async fn retrieve_batch(&self, ctx: &RequestCtx, batch: &ObjectRef) -> Result<Batch, ApiError>;

    /// Moves the batch to `cancelling`; it ends `cancelled` with partial output.
    async fn cancel_batch(&self, ctx: &RequestCtx, batch: &ObjectRef) -> Result<Batch, ApiError>;

    /// batchgate's extension (`POST /v1/batches/{id}/retry`): a new batch
    /// over the failed lines of an ended batch — those that failed for a
    /// reason other than the request itself, or every failed line when
    /// `all` — linked to it by `metadata.retry_of`. Providers that cannot
    /// re-run lines themselves refuse it.
    async fn retry_batch(
        &self,
        _ctx: &RequestCtx,
        batch: &ObjectRef,
        _all: bool,
    ) -> Result<Batch, ApiError> {
        Err(ApiError::invalid_request(format!(
            "Retrying the failed lines of batch '{}' is not supported by its provider.",
            batch.public_id
        ))
        .with_code("retry_not_supported"))
    }

    /// Lists the batches of one deployment; see [`FileApi::list_files`].
    async fn list_batches(
        &self,
        _ctx: &RequestCtx,
        deployment: &Arc<Deployment>,
        _query: &ListQuery,
    ) -> Result<ListPage<Batch>, ApiError> {
        Err(ApiError::invalid_request(format!(
            "listing batches of model '{}' is not supported by this provider",
            deployment.model_name
        )))
    }
}

/// A provider adapter: both APIs under one name (`hosted_vllm`, ...).
pub trait Provider: FileApi + BatchApi {
    /// The `litellm_params.model` prefix this provider serves.
    fn name(&self) -> &'static str;
}
