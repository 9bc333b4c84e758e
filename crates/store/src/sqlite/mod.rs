//! The embedded default: SQLite in WAL mode through sqlx.

mod batches;
#[cfg(test)]
mod cursor_tests;
mod files;
mod keys;
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
        Ok(())
    }
}
