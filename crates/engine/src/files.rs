//! The Files API served from the gateway's own store.

use std::sync::Arc;

use async_trait::async_trait;
use batchgate_core::{
    ApiError, DeletedFile, Deployment, FileApi, FileContent, FileObject, FilePurpose, ListPage,
    ListQuery, ObjectRef, RequestCtx, Upload,
};
use batchgate_ids::Kind;
use batchgate_store::{Deleted, FileFilter, FileRecord, Owner, PutOutcome};

use crate::Catalog;

/// Files kept by the gateway: bytes in the blob store, metadata in the
/// catalog. Used for every deployment whose batches the gateway runs.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    catalog: Catalog,
}

impl LocalFiles {
    pub fn new(catalog: Catalog) -> LocalFiles {
        LocalFiles { catalog }
    }

    /// A visible, unexpired file row, or "not found".
    pub async fn record(&self, ctx: &RequestCtx, file: &ObjectRef) -> Result<FileRecord, ApiError> {
        let row = self
            .catalog
            .store
            .get_file(&file.local_key, self.catalog.now())
            .await?
            .ok_or_else(|| ApiError::not_found("file", &file.public_id))?;
        self.catalog
            .check_visible(&row.owner, &ctx.caller, "file", &file.public_id)?;
        Ok(row)
    }

    /// Lists the catalog: every file the caller may see, optionally only
    /// those of one deployment.
    pub async fn list(
        &self,
        ctx: &RequestCtx,
        deployment: Option<&Deployment>,
        query: &ListQuery,
    ) -> Result<ListPage<FileObject>, ApiError> {
        let after = match &query.after {
            None => None,
            Some(id) => match self.catalog.ids.route(Kind::File, id) {
                Ok(r) => Some(r.local_key),
                // An unknown cursor means the client paged past the end.
                Err(_) => return Ok(ListPage::new(vec![], false, |f: &FileObject| &f.id)),
            },
        };
        let filter = FileFilter {
            purpose: query.purpose,
            model_name: deployment.map(|d| d.model_name.clone()),
            caller: ctx.caller.clone(),
            now: self.catalog.now(),
        };
        let page = self
            .catalog
            .store
            .list_files(&filter, after.as_deref(), query.limit, query.order)
            .await?;
        let data = page.items.into_iter().map(|r| r.object).collect();
        Ok(ListPage::new(data, page.has_more, |f: &FileObject| &f.id))
    }

    /// Writes bytes the gateway itself produced (batch output and error
    /// files) for `deployment`, owned by `owner`, and returns the row to
    /// commit — the caller commits it together with the batch's new status,
    /// so a crash never leaves a result file without its batch.
    pub async fn write_generated(
        &self,
        deployment: &Deployment,
        owner: Owner,
        filename: &str,
        body: batchgate_core::ByteStream,
        expires_at: Option<i64>,
    ) -> Result<FileRecord, ApiError> {
        let purpose = FilePurpose::BatchOutput;
        self.write_made(deployment, owner, filename, purpose, body, expires_at)
            .await
    }

    /// Writes a batch input file the gateway made (the lines a retry
    /// sends again) for `deployment`, owned by `owner` and expiring like an
    /// uploaded batch file; returns the row, not yet committed
    /// ([`LocalFiles::insert`] commits it, [`LocalFiles::discard`] drops it).
    pub async fn write_input(
        &self,
        deployment: &Deployment,
        owner: Owner,
        filename: &str,
        body: batchgate_core::ByteStream,
    ) -> Result<FileRecord, ApiError> {
        let expiry =
            i64::try_from(self.catalog.general.batch_file_expiry_seconds).unwrap_or(i64::MAX);
        let expires_at = Some(self.catalog.now().saturating_add(expiry));
        let purpose = FilePurpose::Batch;
        self.write_made(deployment, owner, filename, purpose, body, expires_at)
            .await
    }

    /// Commits a row written by [`LocalFiles::write_input`]; on failure its
    /// bytes are removed.
    pub async fn insert(&self, record: &FileRecord) -> Result<(), ApiError> {
        if let Err(e) = self.catalog.store.insert_file(record).await {
            self.discard(record).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Removes the bytes of a row that was never committed (best effort:
    /// a leftover blob is unreachable, not visible).
    pub async fn discard(&self, record: &FileRecord) {
        if let Some(path) = &record.blob_path {
            if let Err(e) = self.catalog.blobs.delete(path).await {
                tracing::warn!(error = %e, path, "could not remove an uncommitted file's bytes");
            }
        }
    }

    async fn write_made(
        &self,
        deployment: &Deployment,
        owner: Owner,
        filename: &str,
        purpose: FilePurpose,
        body: batchgate_core::ByteStream,
        expires_at: Option<i64>,
    ) -> Result<FileRecord, ApiError> {
        let (public_id, key) = self.catalog.ids.new_local(Kind::File, deployment)?;
        let blob_path = blob_path(&key);
        let bytes = match self
            .catalog
            .blobs
            .put_stream(&blob_path, body, u64::MAX)
            .await?
        {
            PutOutcome::Stored { bytes } => bytes,
            PutOutcome::TooLarge => {
                return Err(ApiError::internal("generated file over the limit"))
            }
            PutOutcome::BodyError(e) => {
                tracing::error!(error = %e, "cannot write a generated file");
                return Err(ApiError::internal("could not write a result file"));
            }
        };
        let mut object = FileObject::new(&public_id, bytes, self.catalog.now(), filename, purpose);
        object.expires_at = expires_at;
        Ok(FileRecord {
            key,
            object,
            deployment_id: deployment.id.clone(),
            model_name: deployment.model_name.clone(),
            blob_path: Some(blob_path),
            upstream_id: None,
            owner,
        })
    }

    async fn commit(
        &self,
        key: String,
        object: FileObject,
        deployment: &Deployment,
        blob_path: String,
        owner: Owner,
    ) -> Result<FileObject, ApiError> {
        let record = FileRecord {
            key,
            object,
            deployment_id: deployment.id.clone(),
            model_name: deployment.model_name.clone(),
            blob_path: Some(blob_path.clone()),
            upstream_id: None,
            owner,
        };
        if let Err(e) = self.catalog.store.insert_file(&record).await {
            // The row never committed: the bytes must not linger unowned.
            let _ = self.catalog.blobs.delete(&blob_path).await;
            return Err(e.into());
        }
        Ok(record.object)
    }
}

fn blob_path(key: &str) -> String {
    format!("files/{key}")
}

#[async_trait]
impl FileApi for LocalFiles {
    async fn create_file(
        &self,
        ctx: &RequestCtx,
        deployment: &Arc<Deployment>,
        upload: Upload,
    ) -> Result<FileObject, ApiError> {
        let (public_id, key) = self.catalog.ids.new_local(Kind::File, deployment)?;
        let blob_path = blob_path(&key);
        let limit = self.catalog.general.max_file_bytes();
        let bytes = match self
            .catalog
            .blobs
            .put_stream(&blob_path, upload.body, limit)
            .await?
        {
            PutOutcome::Stored { bytes } => bytes,
            PutOutcome::TooLarge => {
                return Err(ApiError::too_large(format!(
                    "File is larger than the limit of {} MB.",
                    self.catalog.general.max_file_size_mb
                ))
                .with_param("file"))
            }
            PutOutcome::BodyError(e) => {
                return Err(ApiError::invalid_request(format!(
                    "Could not read the uploaded file: {e}"
                ))
                .with_param("file"))
            }
        };
        let created_at = self.catalog.now();
        let mut object = FileObject::new(
            &public_id,
            bytes,
            created_at,
            &upload.filename,
            upload.purpose,
        );
        object.expires_at = match (&upload.expires_after, upload.purpose) {
            (Some(e), _) => {
                Some(created_at.saturating_add(i64::try_from(e.seconds).unwrap_or(i64::MAX)))
            }
            (None, FilePurpose::Batch) => Some(created_at.saturating_add(
                i64::try_from(self.catalog.general.batch_file_expiry_seconds).unwrap_or(i64::MAX),
            )),
            (None, _) => None,
        };
        self.commit(key, object, deployment, blob_path, Owner::of(&ctx.caller))
            .await
    }

    async fn retrieve_file(
        &self,
        ctx: &RequestCtx,
        file: &ObjectRef,
    ) -> Result<FileObject, ApiError> {
        Ok(self.record(ctx, file).await?.object)
    }

    async fn file_content(
        &self,
        ctx: &RequestCtx,
        file: &ObjectRef,
    ) -> Result<FileContent, ApiError> {
        let row = self.record(ctx, file).await?;
        let path = row
            .blob_path
            .ok_or_else(|| ApiError::not_found("file", &file.public_id))?;
        let (size, body) = self.catalog.blobs.get_stream(&path).await?;
        Ok(FileContent {
            bytes: Some(size),
            body,
        })
    }

    async fn delete_file(
        &self,
        ctx: &RequestCtx,
        file: &ObjectRef,
    ) -> Result<DeletedFile, ApiError> {
        let record = self.record(ctx, file).await?;
        let in_use = || {
            ApiError::conflict(
                "This file is the input of a batch that has not ended; cancel the batch or wait for it to end.",
            )
        };
        let row = match self.catalog.store.delete_file(&file.local_key).await {
            Ok(deleted) => deleted,
            // Deleting is how an operator frees space: on a full disk the
            // bytes go first (they are most of the space), then the row.
            Err(e) if e.is_storage_full() => {
                if self.catalog.store.file_in_use(&file.local_key).await? {
                    return Err(in_use());
                }
                tracing::warn!(file = %file.public_id, "storage full: removing the file's bytes before its row");
                if let Some(path) = &record.blob_path {
                    self.catalog.blobs.delete(path).await?;
                }
                self.catalog.store.delete_file(&file.local_key).await?
            }
            Err(e) => return Err(e.into()),
        };
        let row = match row {
            Deleted::Removed(row) => *row,
            Deleted::InUse => return Err(in_use()),
            Deleted::Missing => return Err(ApiError::not_found("file", &file.public_id)),
        };
        if let Some(path) = row.blob_path {
            if let Err(e) = self.catalog.blobs.delete(&path).await {
                tracing::warn!(error = %e, path, "file row deleted but its bytes remain");
            }
        }
        Ok(DeletedFile::new(&file.public_id))
    }

    async fn list_files(
        &self,
        ctx: &RequestCtx,
        deployment: &Arc<Deployment>,
        query: &ListQuery,
    ) -> Result<ListPage<FileObject>, ApiError> {
        self.list(ctx, Some(deployment), query).await
    }
}
