//! `FileApi` and `BatchApi` for vLLM deployments.

use std::sync::Arc;

use async_trait::async_trait;
use batchgate_core::{
    ApiError, Batch, BatchApi, CreateBatchRequest, DeletedFile, Deployment, FileApi, FileContent,
    FileObject, ListPage, ListQuery, ObjectRef, Provider, RequestCtx, Upload,
};
use batchgate_engine::{Engine, LocalFiles};

/// The `hosted_vllm` provider.
#[derive(Debug, Clone)]
pub struct VllmProvider {
    files: LocalFiles,
    engine: Engine,
}

impl VllmProvider {
    /// The provider name, as written in `litellm_params.model`.
    pub const NAME: &'static str = "hosted_vllm";

    /// A provider whose files live in `files` and whose batches run on
    /// `engine`.
    pub fn new(files: LocalFiles, engine: Engine) -> VllmProvider {
        VllmProvider { files, engine }
    }
}

impl Provider for VllmProvider {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

#[async_trait]
impl FileApi for VllmProvider {
    async fn create_file(
        &self,
        ctx: &RequestCtx,
        d: &Arc<Deployment>,
        upload: Upload,
    ) -> Result<FileObject, ApiError> {
        self.files.create_file(ctx, d, upload).await
    }

    async fn retrieve_file(&self, ctx: &RequestCtx, f: &ObjectRef) -> Result<FileObject, ApiError> {
        self.files.retrieve_file(ctx, f).await
    }

    async fn file_content(&self, ctx: &RequestCtx, f: &ObjectRef) -> Result<FileContent, ApiError> {
        self.files.file_content(ctx, f).await
    }

    async fn delete_file(&self, ctx: &RequestCtx, f: &ObjectRef) -> Result<DeletedFile, ApiError> {
        self.files.delete_file(ctx, f).await
    }

    async fn list_files(
        &self,
        ctx: &RequestCtx,
        d: &Arc<Deployment>,
        q: &ListQuery,
    ) -> Result<ListPage<FileObject>, ApiError> {
        self.files.list_files(ctx, d, q).await
    }
}

#[async_trait]
impl BatchApi for VllmProvider {
    async fn create_batch(
        &self,
        ctx: &RequestCtx,
        input: &ObjectRef,
        req: CreateBatchRequest,
    ) -> Result<Batch, ApiError> {
        self.engine.create(ctx, input, req).await
    }

    async fn retrieve_batch(&self, ctx: &RequestCtx, b: &ObjectRef) -> Result<Batch, ApiError> {
        self.engine.retrieve(ctx, b).await
    }

    async fn cancel_batch(&self, ctx: &RequestCtx, b: &ObjectRef) -> Result<Batch, ApiError> {
        self.engine.cancel(ctx, b).await
    }

    async fn list_batches(
        &self,
        ctx: &RequestCtx,
        _: &Arc<Deployment>,
        q: &ListQuery,
    ) -> Result<ListPage<Batch>, ApiError> {
        self.engine.list(ctx, q).await
    }
}
