//! `MetaStore` for SQLite: files.

use async_trait::async_trait;
use batchgate_core::{Caller, FileObject, FilePurpose, FileStatus, ListOrder};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{push_visible_to, SqliteStore};
use crate::{Deleted, FileFilter, FileRecord, FileStore, Owner, Page, StoreError};

const FILE_COLUMNS: &str = "key, public_id, bytes, created_at, filename, purpose, status, \
     expires_at, status_details, deployment_id, model_name, blob_path, upstream_id, owner_key, owner_team";

#[async_trait]
impl FileStore for SqliteStore {
    async fn insert_file(&self, f: &FileRecord) -> Result<(), StoreError> {
        insert_file_on(self.pool(), f).await
    }

    async fn get_file(&self, key: &str, now: i64) -> Result<Option<FileRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
        ))
        .bind(key)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| file_from_row(&r)).transpose()
    }

    async fn list_files(
        &self,
        filter: &FileFilter,
        after: Option<&str>,
        limit: u32,
        order: ListOrder,
    ) -> Result<Page<FileRecord>, StoreError> {
        let cursor = match after {
            None => None,
            Some(key) => match self.file_cursor(key, &filter.caller).await? {
                Some(seq) => Some(seq),
                None => {
                    return Ok(Page {
                        items: vec![],
                        has_more: false,
                    })
                }
            },
        };
        let mut q: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE (expires_at IS NULL OR expires_at > "
        ));
        q.push_bind(filter.now).push(")");
        if let Some(purpose) = filter.purpose {
            q.push(" AND purpose = ").push_bind(purpose.as_str());
        }
        if let Some(model) = &filter.model_name {
            q.push(" AND model_name = ").push_bind(model.clone());
        }
        push_visible_to(&mut q, &filter.caller);
        let (cmp, dir) = match order {
            ListOrder::Asc => (">", "ASC"),
            ListOrder::Desc => ("<", "DESC"),
        };
        if let Some(seq) = cursor {
            q.push(format!(" AND seq {cmp} ")).push_bind(seq);
        }
        q.push(format!(" ORDER BY seq {dir} LIMIT "))
            .push_bind(i64::from(limit) + 1);
        let rows = q.build().fetch_all(self.pool()).await?;
        let mut items = rows
            .iter()
            .map(file_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok(Page { items, has_more })
    }

    async fn delete_file(&self, key: &str) -> Result<Deleted, StoreError> {
        match self.delete_row(key).await {
            Err(e) if e.is_storage_full() && self.release_reserve().await => {
                self.delete_row(key).await
            }
            other => other,
        }
    }

    async fn take_expired_files(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "DELETE FROM files WHERE seq IN (SELECT seq FROM files WHERE expires_at IS NOT NULL \
             AND expires_at <= ? AND key NOT IN (SELECT input_key FROM batches WHERE status IN \
             ('validating', 'in_progress', 'finalizing', 'cancelling')) LIMIT ?) RETURNING {FILE_COLUMNS}"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(file_from_row).collect()
    }
}

impl SqliteStore {
    /// Deletes a file row unless a running batch reads it.
    async fn delete_row(&self, key: &str) -> Result<Deleted, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let in_use: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM batches WHERE input_key = ? AND status IN \
             ('validating', 'in_progress', 'finalizing', 'cancelling') LIMIT 1",
        )
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if in_use.is_some() {
            tx.rollback().await?;
            return Ok(Deleted::InUse);
        }
        let rows = sqlx::query(&format!(
            "DELETE FROM files WHERE key = ? RETURNING {FILE_COLUMNS}"
        ))
        .bind(key)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        match rows.first() {
            Some(row) => Ok(Deleted::Removed(Box::new(file_from_row(row)?))),
            None => Ok(Deleted::Missing),
        }
    }

    /// The listing position of the file `key` if `caller` may see it, live
    /// or deleted (a tombstone still marks a place). A file the caller may
    /// not see is no cursor at all: paging from it must look exactly like
    /// paging from an unknown ID, or it would reveal the file and its place.
    async fn file_cursor(&self, key: &str, caller: &Caller) -> Result<Option<i64>, StoreError> {
        let mut q: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("SELECT seq FROM files WHERE key = ");
        q.push_bind(key.to_string());
        push_visible_to(&mut q, caller);
        q.push(" UNION ALL SELECT seq FROM file_tombstones WHERE key = ")
            .push_bind(key.to_string());
        push_visible_to(&mut q, caller);
        Ok(q.build_query_scalar().fetch_optional(self.pool()).await?)
    }
}

/// Inserts a file row on any executor (the pool, or a transaction that also
/// finalizes a batch).
pub(crate) async fn insert_file_on<'e, E>(executor: E, f: &FileRecord) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    sqlx::query(
        "INSERT INTO files (key, public_id, bytes, created_at, filename, purpose, status, \
         expires_at, status_details, deployment_id, model_name, blob_path, upstream_id, owner_key, owner_team) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&f.key)
    .bind(&f.object.id)
    .bind(i64::try_from(f.object.bytes).unwrap_or(i64::MAX))
    .bind(f.object.created_at)
    .bind(&f.object.filename)
    .bind(f.object.purpose.as_str())
    .bind(status_str(f.object.status))
    .bind(f.object.expires_at)
    .bind(&f.object.status_details)
    .bind(&f.deployment_id)
    .bind(&f.model_name)
    .bind(&f.blob_path)
    .bind(&f.upstream_id)
    .bind(&f.owner.key_id)
    .bind(&f.owner.team_id)
    .execute(executor)
    .await?;
    Ok(())
}

fn status_str(s: FileStatus) -> &'static str {
    match s {
        FileStatus::Uploaded => "uploaded",
        FileStatus::Processed => "processed",
        FileStatus::Error => "error",
    }
}

pub(crate) fn file_from_row(r: &SqliteRow) -> Result<FileRecord, StoreError> {
    let purpose: String = r.try_get("purpose")?;
    let status: String = r.try_get("status")?;
    let bytes: i64 = r.try_get("bytes")?;
    Ok(FileRecord {
        key: r.try_get("key")?,
        object: FileObject {
            id: r.try_get("public_id")?,
            object: "file".to_string(),
            bytes: u64::try_from(bytes).unwrap_or_default(),
            created_at: r.try_get("created_at")?,
            filename: r.try_get("filename")?,
            purpose: FilePurpose::parse(&purpose)
                .ok_or_else(|| StoreError::Corrupt(format!("file purpose {purpose:?}")))?,
            status: match status.as_str() {
                "uploaded" => FileStatus::Uploaded,
                "processed" => FileStatus::Processed,
                "error" => FileStatus::Error,
                other => return Err(StoreError::Corrupt(format!("file status {other:?}"))),
            },
            expires_at: r.try_get("expires_at")?,
            status_details: r.try_get("status_details")?,
        },
        deployment_id: r.try_get("deployment_id")?,
        model_name: r.try_get("model_name")?,
        blob_path: r.try_get("blob_path")?,
        upstream_id: r.try_get("upstream_id")?,
        owner: Owner {
            key_id: r.try_get("owner_key")?,
            team_id: r.try_get("owner_team")?,
        },
    })
}
