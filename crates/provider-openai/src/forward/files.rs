//! Forwarded Files API.

use std::sync::Arc;

use batchgate_core::{
    ApiError, DeletedFile, Deployment, FileContent, FileObject, FilePurpose, ListPage, ListQuery,
    ObjectRef, RequestCtx, Upload,
};
use batchgate_ids::Kind;
use batchgate_store::{FileRecord, Owner};
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::{ids, rewrite, store_err, unreachable, Forwarder};

impl Forwarder {
    /// Streams the upload to the upstream's `/v1/files`.
    pub async fn create_file(
        &self,
        ctx: &RequestCtx,
        d: &Arc<Deployment>,
        upload: Upload,
    ) -> Result<FileObject, ApiError> {
        let body = if upload.purpose == FilePurpose::Batch && d.model_name != d.served_model {
            rewrite::served_model_names(upload.body, d.model_name.clone(), d.served_model.clone())
        } else {
            upload.body
        };
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body))
            .file_name(upload.filename.clone());
        let mut form = reqwest::multipart::Form::new()
            .text("purpose", upload.purpose.as_str().to_string())
            .part("file", part);
        if let Some(e) = &upload.expires_after {
            form = form
                .text("expires_after[anchor]", e.anchor.clone())
                .text("expires_after[seconds]", e.seconds.to_string());
        }
        let req = self
            .request(reqwest::Method::POST, d, "/files", ctx)
            .multipart(form);
        let body = self.json(req, "file", "").await?;
        self.adopt_file(d, body, Self::owner(ctx)).await
    }

    /// Re-encodes an upstream File object and makes sure the catalog knows
    /// it (owned by `owner` if it is new).
    pub(super) async fn adopt_file(
        &self,
        d: &Deployment,
        body: Value,
        owner: Owner,
    ) -> Result<FileObject, ApiError> {
        let mut object: FileObject = serde_json::from_value(body).map_err(|e| {
            ApiError::bad_gateway(format!("The upstream's file object is malformed: {e}"))
        })?;
        let upstream_id = std::mem::take(&mut object.id);
        let (public, key) = ids::encode(&self.catalog, Kind::File, d, &upstream_id)?;
        object.id = public;
        self.ensure_file_row(d, &key, &object, &upstream_id, owner)
            .await?;
        Ok(object)
    }

    pub(super) async fn ensure_file_row(
        &self,
        d: &Deployment,
        key: &str,
        object: &FileObject,
        upstream_id: &str,
        owner: Owner,
    ) -> Result<(), ApiError> {
        if self
            .catalog
            .files()
            .get_file(key, i64::MIN)
            .await
            .map_err(store_err)?
            .is_some()
        {
            return Ok(());
        }
        let record = FileRecord {
            key: key.to_string(),
            object: object.clone(),
            deployment_id: d.id.clone(),
            model_name: d.model_name.clone(),
            blob_path: None,
            upstream_id: Some(upstream_id.to_string()),
            owner,
        };
        // A concurrent adopter may have won the race; its row is as good.
        if let Err(e) = self.catalog.files().insert_file(&record).await {
            tracing::debug!(error = %e, "catalog row for a forwarded file already exists");
        }
        Ok(())
    }

    /// The catalog row of a forwarded file the caller may see.
    pub(super) async fn visible_file(
        &self,
        ctx: &RequestCtx,
        f: &ObjectRef,
    ) -> Result<FileRecord, ApiError> {
        let row = self
            .catalog
            .files()
            .get_file(&f.local_key, i64::MIN)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Self::not_found("file", &f.public_id))?;
        self.catalog
            .check_visible(&row.owner, &ctx.caller, "file", &f.public_id)?;
        Ok(row)
    }

    pub async fn retrieve_file(
        &self,
        ctx: &RequestCtx,
        f: &ObjectRef,
        upstream_id: &str,
    ) -> Result<FileObject, ApiError> {
        let row = self.visible_file(ctx, f).await?;
        let req = self.request(
            reqwest::Method::GET,
            &f.deployment,
            &format!("/files/{upstream_id}"),
            ctx,
        );
        let body = self.json(req, "file", &f.public_id).await?;
        self.adopt_file(&f.deployment, body, row.owner).await
    }

    pub async fn file_content(
        &self,
        ctx: &RequestCtx,
        f: &ObjectRef,
        upstream_id: &str,
    ) -> Result<FileContent, ApiError> {
        self.visible_file(ctx, f).await?;
        let req = self.request(
            reqwest::Method::GET,
            &f.deployment,
            &format!("/files/{upstream_id}/content"),
            ctx,
        );
        let response = req.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Err(super::check(status, body, "file", &f.public_id)
                .err()
                .unwrap_or_else(|| ApiError::bad_gateway("upstream error")));
        }
        let bytes = response.content_length();
        let body = response
            .bytes_stream()
            .map_err(std::io::Error::other)
            .boxed();
        Ok(FileContent { bytes, body })
    }

    pub async fn delete_file(
        &self,
        ctx: &RequestCtx,
        f: &ObjectRef,
        upstream_id: &str,
    ) -> Result<DeletedFile, ApiError> {
        self.visible_file(ctx, f).await?;
        let req = self.request(
            reqwest::Method::DELETE,
            &f.deployment,
            &format!("/files/{upstream_id}"),
            ctx,
        );
        self.json(req, "file", &f.public_id).await?;
        // The upstream deleted it; an `InUse` or `Missing` row changes
        // nothing for the caller.
        self.catalog
            .files()
            .delete_file(&f.local_key)
            .await
            .map_err(store_err)?;
        Ok(DeletedFile::new(&f.public_id))
    }

    /// The upstream's listing, re-encoded, showing only what the caller may
    /// see.
    pub async fn list_files(
        &self,
        ctx: &RequestCtx,
        d: &Arc<Deployment>,
        q: &ListQuery,
    ) -> Result<ListPage<FileObject>, ApiError> {
        let mut params = vec![
            ("limit", q.limit.to_string()),
            ("order", format!("{:?}", q.order).to_lowercase()),
        ];
        if let Some(p) = q.purpose {
            params.push(("purpose", p.as_str().to_string()));
        }
        if let Some(after) = &q.after {
            match self.cursor_upstream_id(ctx, Kind::File, after).await? {
                Some(up) => params.push(("after", up)),
                None => return Ok(ListPage::new(vec![], false, |f: &FileObject| &f.id)),
            }
        }
        let req = self
            .request(reqwest::Method::GET, d, "/files", ctx)
            .query(&params);
        let body = self.json(req, "file", "").await?;
        let has_more = body["has_more"].as_bool().unwrap_or(false);
        let mut data = Vec::new();
        for item in body["data"].as_array().cloned().unwrap_or_default() {
            let object = self.adopt_file(d, item, Owner::default()).await?;
            let routed = self.catalog.route(Kind::File, &object.id)?;
            if self.visible_file(ctx, &routed).await.is_ok() {
                data.push(object);
            }
        }
        Ok(ListPage::new(data, has_more, |f: &FileObject| &f.id))
    }

    /// The upstream ID behind a listing cursor (inline, or via the catalog),
    /// or `None` when it is unknown or not the caller's: a cursor the caller
    /// may not see must page exactly like an unknown one, or the upstream's
    /// answer would reveal where another tenant's object sits.
    pub(super) async fn cursor_upstream_id(
        &self,
        ctx: &RequestCtx,
        kind: Kind,
        public_id: &str,
    ) -> Result<Option<String>, ApiError> {
        let Ok(routed) = self.catalog.route(kind, public_id) else {
            return Ok(None);
        };
        let caller = &ctx.caller;
        let row = match kind {
            Kind::File => self
                .catalog
                .files()
                .get_file(&routed.local_key, i64::MIN)
                .await
                .map_err(store_err)?
                .map(|r| (r.owner, r.upstream_id)),
            Kind::Batch => self
                .catalog
                .batches()
                .get_batch(&routed.local_key)
                .await
                .map_err(store_err)?
                .map(|r| (r.owner, r.upstream_id)),
        };
        Ok(match row {
            Some((owner, upstream)) if owner.visible_to(caller) => routed.upstream_id.or(upstream),
            // The master key may page from an inline ID the catalog has not
            // adopted yet; nobody else owns such an object.
            None if caller.is_master => routed.upstream_id,
            _ => None,
        })
    }
}
