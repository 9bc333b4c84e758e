//! The embedded default: SQLite in WAL mode through sqlx.

mod batches;
mod files;
mod keys;
mod spend;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::StoreError;

/// Metadata in one SQLite file. WAL lets readers (list, retrieve) run while
/// the engine writes; `synchronous=NORMAL` keeps every committed transaction
/// across a process crash (SIGKILL), which is the guarantee batchgate makes.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

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
        Ok(SqliteStore { pool })
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

#[async_trait::async_trait]
impl crate::MetaStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}
