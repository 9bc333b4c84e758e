//! The embedded default: SQLite in WAL mode through sqlx.

mod batches;
mod chunks;
mod files;
mod fleet;
mod keys;
mod rows;
mod spend;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use batchgate_core::Caller;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::StoreError;

/// Metadata in one SQLite file. WAL lets readers (list, retrieve) run while
/// the engine writes; `synchronous=NORMAL` keeps every committed transaction
/// across a process crash (SIGKILL), which is the guarantee batchgate makes.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Space held back beside the database so that deleting files — how an
    /// operator frees space — still works once the disk is full.
    reserve: std::path::PathBuf,
}

/// Size of the reserve: room for many row deletes and a WAL checkpoint.
const RESERVE_BYTES: usize = 4 * 1024 * 1024;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            // A connection still inside a transaction when it comes back (a
            // COMMIT failed on a full disk and SQLite had already rolled
            // back, so the ROLLBACK failed too, leaving sqlx's depth count
            // behind) is closed rather than reused: reused, its stale state
            // turned later BEGINs into SAVEPOINTs whose rollback kept the
            // write lock, and the whole store stayed locked after space
            // came back.
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    let clean = !conn.is_in_transaction();
                    if !clean {
                        tracing::warn!("closing a store connection left inside a transaction");
                    }
                    Ok(clean)
                })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let store = SqliteStore {
            pool,
            reserve: path.with_extension("reserve"),
        };
        store.keep_reserve().await;
        Ok(store)
    }

    /// Puts the reserve back if it is missing (best effort: on a disk that
    /// is still full it stays missing, and no partial file is left).
    pub(crate) async fn keep_reserve(&self) {
        let path = self.reserve.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if path.exists() {
                return;
            }
            let tmp = path.with_extension("reserve.tmp");
            let made = std::fs::write(&tmp, vec![0u8; RESERVE_BYTES])
                .and_then(|()| std::fs::rename(&tmp, &path));
            if made.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        })
        .await;
    }

    /// Gives the reserve up to the database; `true` if there was one.
    pub(crate) async fn release_reserve(&self) -> bool {
        let released = tokio::fs::remove_file(&self.reserve).await.is_ok();
        if released {
            tracing::warn!("storage full: released the reserved space so deletes can proceed");
        }
        released
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Unix seconds, for ledger rows.
    pub(crate) fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default()
    }
}

/// Appends ` AND <the row is visible to caller>` for a table with
/// `owner_key`/`owner_team` columns (the master key sees every row). The one
/// ownership rule of listings, shared by their rows and their cursors.
pub(crate) fn push_visible_to(q: &mut QueryBuilder<'_, Sqlite>, caller: &Caller) {
    if !caller.is_master {
        q.push(" AND (owner_key = ")
            .push_bind(caller.key_id.clone())
            .push(" OR owner_team = ")
            .push_bind(caller.team_id.clone())
            .push(")");
    }
}

#[async_trait::async_trait]
impl crate::MetaStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        self.keep_reserve().await;
        Ok(())
    }
}
