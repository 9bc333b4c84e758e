//! The Batch API over the engine: create, retrieve, cancel, list.

use batchgate_config::{window_seconds, DEFAULT_ENDPOINTS};
use batchgate_core::{
    ApiError, Batch, BatchApi, BatchStatus, CreateBatchRequest, Deployment, ExpiresAfter,
    FilePurpose, ListPage, ListQuery, ObjectRef, RequestCounts, RequestCtx,
};
use batchgate_ids::Kind;
use batchgate_store::{BatchRecord, Owner, Transition};

use super::Engine;

impl Engine {
    /// Checks the request, records the batch in `validating` and wakes the
    /// supervisor. Problems with the file's contents surface later as a
    /// `failed` batch, as on OpenAI.
    pub async fn create(
        &self,
        ctx: &RequestCtx,
        input: &ObjectRef,
        req: CreateBatchRequest,
    ) -> Result<Batch, ApiError> {
        let file = self.shared.files.record(ctx, input).await?;
        self.insert_new(input, &file, req, Owner::of(&ctx.caller))
            .await
    }

    /// Records a new batch over `input` (whose row is `file`) owned by
    /// `owner`, in `validating`, and wakes the supervisor.
    pub(super) async fn insert_new(
        &self,
        input: &ObjectRef,
        file: &batchgate_store::FileRecord,
        req: CreateBatchRequest,
        owner: Owner,
    ) -> Result<Batch, ApiError> {
        let gw = &self.shared.gw;
        let deployment = &input.deployment;
        let (window, output_expires_seconds) = self.check_request(file, deployment, &req)?;
        let (public_id, key) = gw.new_local_id(Kind::Batch, deployment)?;
        let now = gw.now();
        let batch = Batch {
            id: public_id,
            object: "batch".into(),
            endpoint: req.endpoint,
            model: Some(deployment.model_name.clone()),
            errors: None,
            input_file_id: input.public_id.clone(),
            completion_window: req.completion_window,
            status: BatchStatus::Validating,
            output_file_id: None,
            error_file_id: None,
            created_at: now,
            in_progress_at: None,
            expires_at: Some(now.saturating_add(i64::try_from(window).unwrap_or(i64::MAX))),
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            request_counts: RequestCounts::default(),
            metadata: req.metadata,
            usage: None,
            cost: None,
        };
        let record = BatchRecord {
            key,
            batch,
            deployment_id: deployment.id.clone(),
            input_key: input.local_key.clone(),
            upstream_id: None,
            output_expires_seconds,
            owner,
        };
        // The input may have been deleted since it was looked up: the
        // insert checks again, atomically, so no batch is left without it.
        if !gw.store.insert_batch(&record).await? {
            return Err(ApiError::not_found("file", &input.public_id).with_param("input_file_id"));
        }
        self.shared.wake.notify_one();
        Ok(record.batch)
    }

    /// What a create request is checked for before anything is written:
    /// the input's purpose, the endpoint, the window (its length in seconds
    /// is returned), metadata, and `output_expires_after` (its seconds).
    fn check_request(
        &self,
        file: &batchgate_store::FileRecord,
        deployment: &Deployment,
        req: &CreateBatchRequest,
    ) -> Result<(u64, Option<u64>), ApiError> {
        let gw = &self.shared.gw;
        if file.object.purpose != FilePurpose::Batch {
            return Err(ApiError::invalid_request(format!(
                "The input file must have purpose 'batch', not '{}'.",
                file.object.purpose
            ))
            .with_param("input_file_id"));
        }
        if !DEFAULT_ENDPOINTS.contains(&req.endpoint.as_str()) || !deployment.serves(&req.endpoint)
        {
            return Err(ApiError::invalid_request(format!(
                "Unsupported endpoint '{}' for model '{}'. Supported: {}.",
                req.endpoint,
                deployment.model_name,
                deployment.endpoints.join(", ")
            ))
            .with_param("endpoint"));
        }
        let window = gw
            .batch
            .completion_windows
            .iter()
            .find(|w| **w == req.completion_window)
            .and_then(|w| window_seconds(w))
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "completion_window must be one of: {}.",
                    gw.batch.completion_windows.join(", ")
                ))
                .with_param("completion_window")
            })?;
        req.validate_metadata()?;
        let output_expires_seconds = match &req.output_expires_after {
            None => None,
            Some(e)
                if e.anchor == "created_at" && ExpiresAfter::SECONDS_RANGE.contains(&e.seconds) =>
            {
                Some(e.seconds)
            }
            Some(_) => {
                return Err(ApiError::invalid_request(format!(
                    "output_expires_after needs anchor 'created_at' and seconds from {} to {}.",
                    ExpiresAfter::SECONDS_RANGE.start(),
                    ExpiresAfter::SECONDS_RANGE.end()
                ))
                .with_param("output_expires_after"))
            }
        };
        Ok((window, output_expires_seconds))
    }

    /// A batch's row by store key. Rows of ended gateway-run batches are
    /// immutable and served from memory after the first read.
    pub async fn find(&self, key: &str) -> Result<Option<BatchRecord>, ApiError> {
        if let Some(rec) = self.shared.ended.get(key).await {
            return Ok(Some(rec));
        }
        let rec = self.shared.gw.store.get_batch(key).await?;
        if let Some(r) = &rec {
            if r.batch.status.is_terminal() && r.upstream_id.is_none() {
                self.shared.ended.insert(key.to_string(), r.clone()).await;
            }
        }
        Ok(rec)
    }

    /// A batch's row if the caller may see it, else "not found".
    pub async fn visible(&self, ctx: &RequestCtx, b: &ObjectRef) -> Result<BatchRecord, ApiError> {
        let rec = self
            .find(&b.local_key)
            .await?
            .ok_or_else(|| ApiError::not_found("batch", &b.public_id))?;
        self.shared
            .gw
            .catalog
            .check_visible(&rec.owner, &ctx.caller, "batch", &b.public_id)?;
        Ok(rec)
    }

    pub async fn retrieve(&self, ctx: &RequestCtx, b: &ObjectRef) -> Result<Batch, ApiError> {
        Ok(self.visible(ctx, b).await?.batch)
    }

    /// Moves the batch to `cancelling`; its runner stops dispatching, lets
    /// in-flight lines finish within the grace period and ends it
    /// `cancelled` with the partial results. Cancelling twice is harmless.
    pub async fn cancel(&self, ctx: &RequestCtx, b: &ObjectRef) -> Result<Batch, ApiError> {
        use BatchStatus::*;
        let rec = self.visible(ctx, b).await?;
        let t = Transition::new(
            &[Validating, InProgress, Finalizing],
            Cancelling,
            self.shared.gw.now(),
        );
        if let Some(updated) = self.shared.gw.store.transition(&rec.key, &t).await? {
            self.shared.wake.notify_one();
            return Ok(updated.batch);
        }
        let now = self.visible(ctx, b).await?;
        match now.batch.status {
            Cancelling => Ok(now.batch),
            s => Err(ApiError::conflict(format!(
                "Cannot cancel a batch with status '{}'.",
                s.as_str()
            ))),
        }
    }

    /// Every batch the caller may see (of `model_name` only, when given),
    /// newest first.
    pub async fn list(
        &self,
        ctx: &RequestCtx,
        model_name: Option<&str>,
        query: &ListQuery,
    ) -> Result<ListPage<Batch>, ApiError> {
        Ok(self.list_owned(ctx, model_name, query).await?.0)
    }

    /// [`Engine::list`], with the owner of each batch (in the same order).
    pub async fn list_owned(
        &self,
        ctx: &RequestCtx,
        model_name: Option<&str>,
        query: &ListQuery,
    ) -> Result<(ListPage<Batch>, Vec<Owner>), ApiError> {
        let gw = &self.shared.gw;
        let after = match &query.after {
            None => None,
            Some(id) => match gw.route(Kind::Batch, id) {
                Ok(r) => Some(r.local_key),
                Err(_) => return Ok((ListPage::new(vec![], false, |b: &Batch| &b.id), vec![])),
            },
        };
        let page = gw
            .store
            .list_batches(&ctx.caller, model_name, after.as_deref(), query.limit)
            .await?;
        let (data, owners) = page.items.into_iter().map(|r| (r.batch, r.owner)).unzip();
        Ok((
            ListPage::new(data, page.has_more, |b: &Batch| &b.id),
            owners,
        ))
    }
}

/// The engine is a [`BatchApi`] of its own: a provider whose batches all
/// run in the gateway can hand it out as is.
#[async_trait::async_trait]
impl BatchApi for Engine {
    async fn create_batch(
        &self,
        ctx: &RequestCtx,
        input: &ObjectRef,
        request: CreateBatchRequest,
    ) -> Result<Batch, ApiError> {
        self.create(ctx, input, request).await
    }

    async fn retrieve_batch(&self, ctx: &RequestCtx, batch: &ObjectRef) -> Result<Batch, ApiError> {
        self.retrieve(ctx, batch).await
    }

    async fn cancel_batch(&self, ctx: &RequestCtx, batch: &ObjectRef) -> Result<Batch, ApiError> {
        self.cancel(ctx, batch).await
    }

    async fn retry_batch(
        &self,
        ctx: &RequestCtx,
        batch: &ObjectRef,
        all: bool,
    ) -> Result<Batch, ApiError> {
        self.retry(ctx, batch, all).await
    }

    /// The batches of `deployment`'s model the caller may see.
    async fn list_batches(
        &self,
        ctx: &RequestCtx,
        deployment: &std::sync::Arc<Deployment>,
        query: &ListQuery,
    ) -> Result<ListPage<Batch>, ApiError> {
        self.list(ctx, Some(&deployment.model_name), query).await
    }
}
