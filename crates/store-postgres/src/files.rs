//! `FileStore` for Postgres.

use async_trait::async_trait;
use batchgate_core::{Caller, ListOrder};
use batchgate_store::{Deleted, FileFilter, FileRecord, FileStore, Page, StoreError};
use sqlx::{Executor, Postgres, QueryBuilder};

use crate::rows::{file_status, FileRow, FILE_COLUMNS};
use crate::{int, push_visible_to, PostgresStore, ACTIVE};

#[async_trait]
impl FileStore for PostgresStore {
    async fn insert_file(&self, f: &FileRecord) -> Result<(), StoreError> {
        insert_file_on(self.pool(), f).await
    }

    async fn get_file(&self, key: &str, now: i64) -> Result<Option<FileRecord>, StoreError> {
        let row: Option<FileRow> = sqlx::query_as(&format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)"
        ))
        .bind(key)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(FileRecord::try_from).transpose()
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
                None => return Ok(empty_page()),
            },
        };
        let mut q: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
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
        let rows: Vec<FileRow> = q.build_query_as().fetch_all(self.pool()).await?;
        page_of(rows, limit)
    }

    async fn delete_file(&self, key: &str) -> Result<Deleted, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Lock the row first: a batch create over this file takes a share
        // lock on it, so from here on none can start, and the check below
        // (a new statement, so a new snapshot) sees every one that did.
        let found: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM files WHERE key = $1 FOR UPDATE")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
        if found.is_none() {
            tx.rollback().await?;
            return Ok(Deleted::Missing);
        }
        if input_in_use(&mut *tx, key).await? {
            tx.rollback().await?;
            return Ok(Deleted::InUse);
        }
        let row: FileRow = sqlx::query_as(&format!(
            "DELETE FROM files WHERE key = $1 RETURNING {FILE_COLUMNS}"
        ))
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Deleted::Removed(Box::new(row.try_into()?)))
    }

    async fn take_expired_files(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Two statements, as in `delete_file`: lock the expired rows (rows
        // another sweeper or a batch create holds are skipped), then delete
        // those no running batch reads, judged on a snapshot taken after
        // the locks.
        let locked: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM files WHERE expires_at IS NOT NULL AND expires_at <= $1 \
             ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let rows: Vec<FileRow> = sqlx::query_as(&format!(
            "DELETE FROM files f WHERE seq = ANY($1) AND NOT EXISTS (SELECT 1 FROM batches b \
             WHERE b.input_key = f.key AND b.status IN {ACTIVE}) RETURNING {FILE_COLUMNS}"
        ))
        .bind(&locked)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(FileRecord::try_from).collect()
    }
}

impl PostgresStore {
    /// The listing position of the file `key` if `caller` may see it, live
    /// or deleted (a tombstone still marks a place). A file the caller may
    /// not see is no cursor at all: paging from it must look exactly like
    /// paging from an unknown ID, or it would reveal the file and its place.
    async fn file_cursor(&self, key: &str, caller: &Caller) -> Result<Option<i64>, StoreError> {
        let mut q: QueryBuilder<'_, Postgres> =
            QueryBuilder::new("SELECT seq FROM files WHERE key = ");
        q.push_bind(key.to_string());
        push_visible_to(&mut q, caller);
        q.push(" UNION ALL SELECT seq FROM file_tombstones WHERE key = ")
            .push_bind(key.to_string());
        push_visible_to(&mut q, caller);
        q.push(" LIMIT 1");
        Ok(q.build_query_scalar().fetch_optional(self.pool()).await?)
    }
}

/// Whether a batch that has not ended reads the file `key`.
pub(crate) async fn input_in_use<'e, E>(executor: E, key: &str) -> Result<bool, StoreError>
where
    E: Executor<'e, Database = Postgres>,
{
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM batches WHERE input_key = $1 AND status IN {ACTIVE})"
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(key)
        .fetch_one(executor)
        .await?)
}

/// Inserts a file row on any executor (the pool, or a transaction that also
/// finalizes a batch).
pub(crate) async fn insert_file_on<'e, E>(executor: E, f: &FileRecord) -> Result<(), StoreError>
where
    E: Executor<'e, Database = Postgres>,
{
    sqlx::query(&format!(
        "INSERT INTO files ({FILE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(&f.key)
    .bind(&f.object.id)
    .bind(int(f.object.bytes))
    .bind(f.object.created_at)
    .bind(&f.object.filename)
    .bind(f.object.purpose.as_str())
    .bind(file_status(f.object.status))
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

pub(crate) fn empty_page<T>() -> Page<T> {
    Page {
        items: vec![],
        has_more: false,
    }
}

/// A page of `limit` rows from `limit + 1` fetched: the extra one says
/// there is more.
pub(crate) fn page_of<R, T>(rows: Vec<R>, limit: u32) -> Result<Page<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    let mut items = rows
        .into_iter()
        .map(T::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Page { items, has_more })
}
