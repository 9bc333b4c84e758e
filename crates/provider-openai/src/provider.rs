//! `FileApi` and `BatchApi` for deployments of an OpenAI-compatible server.
//!
//! Where a call goes is decided once per object: an object created on the
//! upstream (its ID carries, or its catalog row records, an upstream ID) is
//! forwarded; every other object lives in the gateway. New objects follow
//! the deployment's `batch_api` mode.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use batchgate_core::{
    ApiError, Batch, BatchApi, BatchApiMode, CreateBatchRequest, DeletedFile, Deployment, FileApi,
    FileContent, FileObject, ListPage, ListQuery, ObjectRef, Provider, RequestCtx, Upload,
    Upstream,
};
use batchgate_engine::{Catalog, Engine, LocalFiles};
use moka::future::Cache;

use crate::forward::Forwarder;
use crate::Flavor;

/// How long the answer of an `auto` probe is trusted.
const PROBE_TTL: Duration = Duration::from_secs(600);

/// The provider of one [`Flavor`] of OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiCompatProvider {
    flavor: Flavor,
    catalog: Catalog,
    files: LocalFiles,
    engine: Engine,
    forward: Forwarder,
    http: reqwest::Client,
    /// Deployment id → whether its upstream has a batch API.
    probes: Cache<String, bool>,
}

impl std::fmt::Debug for OpenAiCompatProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiCompatProvider")
            .field("name", &self.flavor.name)
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatProvider {
    /// A provider of `flavor` over `catalog` whose gateway-run batches go
    /// to `engine`.
    pub fn new(flavor: Flavor, catalog: Catalog, engine: Engine) -> OpenAiCompatProvider {
        let http = reqwest::Client::new();
        OpenAiCompatProvider {
            flavor,
            files: LocalFiles::new(catalog.clone()),
            forward: Forwarder::new(catalog.clone(), http.clone()),
            catalog,
            engine,
            http,
            probes: Cache::builder()
                .time_to_live(PROBE_TTL)
                .max_capacity(10_000)
                .build(),
        }
    }

    /// Whether new objects of `d` go to the upstream's own API.
    pub async fn forwards(&self, d: &Deployment) -> bool {
        match d.batch_api {
            BatchApiMode::Gateway => false,
            BatchApiMode::Upstream => true,
            BatchApiMode::Auto => {
                let upstream = self.flavor.upstream(&self.http, &Arc::new(d.clone()));
                self.probes.get_with(d.id.clone(), probe(upstream)).await
            }
        }
    }

    /// The upstream ID of a file, if it lives on the upstream.
    async fn upstream_file(&self, f: &ObjectRef) -> Result<Option<String>, ApiError> {
        if f.upstream_id.is_some() {
            return Ok(f.upstream_id.clone());
        }
        Ok(self
            .catalog
            .files()
            .get_file(&f.local_key, i64::MIN)
            .await?
            .and_then(|r| r.upstream_id))
    }

    async fn upstream_batch(&self, b: &ObjectRef) -> Result<Option<String>, ApiError> {
        if b.upstream_id.is_some() {
            return Ok(b.upstream_id.clone());
        }
        // Through the engine: ended batches are answered from its cache.
        Ok(self
            .engine
            .find(&b.local_key)
            .await?
            .and_then(|r| r.upstream_id))
    }
}

/// Asks the deployment's upstream whether it has its own batch API.
async fn probe(upstream: Arc<dyn Upstream>) -> bool {
    let has_api = upstream.has_batch_api().await;
    tracing::info!(has_api, "probed the upstream for a batch API");
    has_api
}

impl Provider for OpenAiCompatProvider {
    fn name(&self) -> &'static str {
        self.flavor.name
    }
}

#[async_trait]
impl FileApi for OpenAiCompatProvider {
    async fn create_file(
        &self,
        ctx: &RequestCtx,
        d: &Arc<Deployment>,
        upload: Upload,
    ) -> Result<FileObject, ApiError> {
        if self.forwards(d).await {
            self.forward.create_file(ctx, d, upload).await
        } else {
            self.files.create_file(ctx, d, upload).await
        }
    }

    async fn retrieve_file(&self, ctx: &RequestCtx, f: &ObjectRef) -> Result<FileObject, ApiError> {
        match self.upstream_file(f).await? {
            Some(up) => self.forward.retrieve_file(ctx, f, &up).await,
            None => self.files.retrieve_file(ctx, f).await,
        }
    }

    async fn file_content(&self, ctx: &RequestCtx, f: &ObjectRef) -> Result<FileContent, ApiError> {
        match self.upstream_file(f).await? {
            Some(up) => self.forward.file_content(ctx, f, &up).await,
            None => self.files.file_content(ctx, f).await,
        }
    }

    async fn delete_file(&self, ctx: &RequestCtx, f: &ObjectRef) -> Result<DeletedFile, ApiError> {
        match self.upstream_file(f).await? {
            Some(up) => self.forward.delete_file(ctx, f, &up).await,
            None => self.files.delete_file(ctx, f).await,
        }
    }

    async fn list_files(
        &self,
        ctx: &RequestCtx,
        d: &Arc<Deployment>,
        q: &ListQuery,
    ) -> Result<ListPage<FileObject>, ApiError> {
        if self.forwards(d).await {
            self.forward.list_files(ctx, d, q).await
        } else {
            self.files.list_files(ctx, d, q).await
        }
    }
}

#[async_trait]
impl BatchApi for OpenAiCompatProvider {
    async fn create_batch(
        &self,
        ctx: &RequestCtx,
        input: &ObjectRef,
        req: CreateBatchRequest,
    ) -> Result<Batch, ApiError> {
        match self.upstream_file(input).await? {
            Some(up) => self.forward.create_batch(ctx, input, &up, req).await,
            None => self.engine.create(ctx, input, req).await,
        }
    }

    /// Clients poll this: one read of the row decides between the engine's
    /// answer and forwarding.
    async fn retrieve_batch(&self, ctx: &RequestCtx, b: &ObjectRef) -> Result<Batch, ApiError> {
        if let Some(up) = &b.upstream_id {
            return self.forward.retrieve_batch(ctx, b, up).await;
        }
        let rec = self.engine.visible(ctx, b).await?;
        match rec.upstream_id {
            Some(up) => self.forward.retrieve_batch(ctx, b, &up).await,
            None => Ok(rec.batch),
        }
    }

    async fn cancel_batch(&self, ctx: &RequestCtx, b: &ObjectRef) -> Result<Batch, ApiError> {
        match self.upstream_batch(b).await? {
            Some(up) => self.forward.cancel_batch(ctx, b, &up).await,
            None => self.engine.cancel(ctx, b).await,
        }
    }

    /// The engine answers for forwarded batches too: it checks visibility
    /// on the catalog row, then refuses them (their lines ran upstream).
    async fn retry_batch(
        &self,
        ctx: &RequestCtx,
        b: &ObjectRef,
        all: bool,
    ) -> Result<Batch, ApiError> {
        self.engine.retry(ctx, b, all).await
    }

    async fn list_batches(
        &self,
        ctx: &RequestCtx,
        d: &Arc<Deployment>,
        q: &ListQuery,
    ) -> Result<ListPage<Batch>, ApiError> {
        if self.forwards(d).await {
            self.forward.list_batches(ctx, d, q).await
        } else {
            self.engine.list_batches(ctx, d, q).await
        }
    }
}
