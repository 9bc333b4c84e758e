//! Forwarded Batch API.

use std::sync::Arc;

use batchgate_core::{
    ApiError, Batch, CreateBatchRequest, Deployment, ListPage, ListQuery, ObjectRef, RequestCtx,
};
use batchgate_ids::Kind;
use batchgate_store::{BatchRecord, Owner};
use serde_json::{json, Value};

use super::{ids, store_err, Forwarder};

impl Forwarder {
    pub async fn create_batch(
        &self,
        ctx: &RequestCtx,
        input: &ObjectRef,
        upstream_input: &str,
        req: CreateBatchRequest,
    ) -> Result<Batch, ApiError> {
        self.visible_file(ctx, input).await?;
        let body = json!({
            "input_file_id": upstream_input,
            "endpoint": req.endpoint,
            "completion_window": req.completion_window,
            "metadata": req.metadata,
            "output_expires_after": req.output_expires_after,
        });
        let request = self
            .request(reqwest::Method::POST, &input.deployment, "/batches", ctx)
            .json(&body);
        let answer = self.json(request, "batch", "").await?;
        self.adopt_batch(ctx, &input.deployment, answer, Self::owner(ctx))
            .await
    }

    /// Re-encodes every ID of an upstream Batch object, registers its
    /// result files with the batch's owner, and refreshes the catalog.
    async fn adopt_batch(
        &self,
        ctx: &RequestCtx,
        d: &Deployment,
        body: Value,
        owner: Owner,
    ) -> Result<Batch, ApiError> {
        let mut batch: Batch = serde_json::from_value(body).map_err(|e| {
            ApiError::bad_gateway(format!("The upstream's batch object is malformed: {e}"))
        })?;
        let upstream_id = std::mem::take(&mut batch.id);
        let (public, key) = ids::encode(&self.catalog, Kind::Batch, d, &upstream_id)?;
        batch.id = public;
        let (input_public, input_key) =
            ids::encode(&self.catalog, Kind::File, d, &batch.input_file_id)?;
        batch.input_file_id = input_public;
        batch.model = Some(d.model_name.clone());
        for slot in [&mut batch.output_file_id, &mut batch.error_file_id] {
            if let Some(up) = slot.take() {
                *slot = Some(self.adopt_result_file(ctx, d, &up, owner.clone()).await?);
            }
        }
        let record = BatchRecord {
            key,
            batch: batch.clone(),
            deployment_id: d.id.clone(),
            input_key,
            upstream_id: Some(upstream_id),
            output_expires_seconds: None,
            owner,
        };
        self.catalog
            .batches()
            .upsert_forwarded_batch(&record)
            .await
            .map_err(store_err)?;
        Ok(batch)
    }

    /// A result file of an upstream batch: known to the catalog (owned like
    /// the batch) before its ID is handed out, so content and ownership
    /// checks work on it at once.
    async fn adopt_result_file(
        &self,
        ctx: &RequestCtx,
        d: &Deployment,
        upstream_id: &str,
        owner: Owner,
    ) -> Result<String, ApiError> {
        let (public, key) = ids::encode(&self.catalog, Kind::File, d, upstream_id)?;
        if self
            .catalog
            .files()
            .get_file(&key, i64::MIN)
            .await
            .map_err(store_err)?
            .is_none()
        {
            let req = self.request(
                reqwest::Method::GET,
                d,
                &format!("/files/{upstream_id}"),
                ctx,
            );
            let body = self.json(req, "file", &public).await?;
            self.adopt_file(d, body, owner).await?;
        }
        Ok(public)
    }

    async fn visible_batch(
        &self,
        ctx: &RequestCtx,
        b: &ObjectRef,
    ) -> Result<BatchRecord, ApiError> {
        let row = self
            .catalog
            .batches()
            .get_batch(&b.local_key)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Self::not_found("batch", &b.public_id))?;
        self.catalog
            .check_visible(&row.owner, &ctx.caller, "batch", &b.public_id)?;
        Ok(row)
    }

    pub async fn retrieve_batch(
        &self,
        ctx: &RequestCtx,
        b: &ObjectRef,
        upstream_id: &str,
    ) -> Result<Batch, ApiError> {
        let path = format!("/batches/{upstream_id}");
        self.batch_call(ctx, b, reqwest::Method::GET, &path).await
    }

    pub async fn cancel_batch(
        &self,
        ctx: &RequestCtx,
        b: &ObjectRef,
        upstream_id: &str,
    ) -> Result<Batch, ApiError> {
        let path = format!("/batches/{upstream_id}/cancel");
        self.batch_call(ctx, b, reqwest::Method::POST, &path).await
    }

    /// A call on one visible batch whose answer is that batch, re-adopted
    /// under its owner.
    async fn batch_call(
        &self,
        ctx: &RequestCtx,
        b: &ObjectRef,
        method: reqwest::Method,
        path: &str,
    ) -> Result<Batch, ApiError> {
        let row = self.visible_batch(ctx, b).await?;
        let req = self.request(method, &b.deployment, path, ctx);
        let body = self.json(req, "batch", &b.public_id).await?;
        self.adopt_batch(ctx, &b.deployment, body, row.owner).await
    }

    pub async fn list_batches(
        &self,
        ctx: &RequestCtx,
        d: &Arc<Deployment>,
        q: &ListQuery,
    ) -> Result<ListPage<Batch>, ApiError> {
        let mut params = vec![("limit", q.limit.to_string())];
        if let Some(after) = &q.after {
            match self.cursor_upstream_id(ctx, Kind::Batch, after).await? {
                Some(up) => params.push(("after", up)),
                None => return Ok(ListPage::new(vec![], false, |b: &Batch| &b.id)),
            }
        }
        let req = self
            .request(reqwest::Method::GET, d, "/batches", ctx)
            .query(&params);
        let body = self.json(req, "batch", "").await?;
        let has_more = body["has_more"].as_bool().unwrap_or(false);
        let mut data = Vec::new();
        for item in body["data"].as_array().cloned().unwrap_or_default() {
            let batch = self.adopt_batch(ctx, d, item, Owner::default()).await?;
            let routed = self.catalog.route(Kind::Batch, &batch.id)?;
            if self.visible_batch(ctx, &routed).await.is_ok() {
                data.push(batch);
            }
        }
        Ok(ListPage::new(data, has_more, |b: &Batch| &b.id))
    }
}
