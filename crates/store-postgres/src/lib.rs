//! batchgate's metadata on PostgreSQL: [`PostgresStore`] implements the
//! same [`MetaStore`](batchgate_store::MetaStore) contract as the embedded
//! SQLite store (`batchgate_store::conformance` proves it on both), for a
//! fleet of gateway instances that share one database.
//!
//! Where SQLite serializes every writer, Postgres runs them side by side
//! under READ COMMITTED, so each operation takes the row locks its
//! contract needs: claims take batches with `FOR UPDATE SKIP LOCKED`, a
//! fenced write locks its batch row before it checks the lease epoch, a
//! file delete and a batch create over that file lock the file row, and
//! money is raised in place (`spend = spend + $1`) on `NUMERIC` columns.

mod batches;
mod chunks;
mod files;
mod fleet;
mod journal;
mod keys;
mod leases;
mod rows;
#[cfg(feature = "testing")]
pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use batchgate_core::Caller;
use batchgate_store::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};

/// Connections per instance. A fleet needs `instances × this` (plus
/// headroom) within the server's `max_connections` (100 by default).
const MAX_CONNECTIONS: u32 = 16;

/// Batch statuses that have not ended: a batch in one of them owns its
/// input file and may be claimed.
pub(crate) const ACTIVE: &str = "('validating', 'in_progress', 'finalizing', 'cancelling')";

/// Metadata in one PostgreSQL database, shared by every instance that
/// connects to it.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://` or `postgresql://`, with libpq's
    /// parameters such as `sslmode` and `options`) and migrates the
    /// database.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// Connects with `options` and migrates the database. Safe when
    /// several instances start at once: sqlx's migrator holds a
    /// database-wide advisory lock (`pg_advisory_lock`) while it checks and
    /// applies migrations, so one instance migrates and the others then
    /// find the schema current.
    pub async fn connect_with(options: PgConnectOptions) -> Result<PostgresStore, StoreError> {
        // One plain connection first: an unreachable or refusing server is
        // reported as what it is (refused, bad password, no database) at
        // once, rather than as a pool timeout after retrying.
        PgConnection::connect_with(&options).await?.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection (tests that drop a database first).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Appends ` AND <the row is visible to caller>` for a table with
/// `owner_key`/`owner_team` columns (the master key sees every row). The
/// one ownership rule of listings, shared by their rows and their cursors.
pub(crate) fn push_visible_to(q: &mut QueryBuilder<'_, Postgres>, caller: &Caller) {
    if !caller.is_master {
        q.push(" AND (owner_key = ")
            .push_bind(caller.key_id.clone())
            .push(" OR owner_team = ")
            .push_bind(caller.team_id.clone())
            .push(")");
    }
}

/// A count or size as Postgres' BIGINT (saturating; nothing real is that
/// large).
pub(crate) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A BIGINT as a count (a negative one, which nothing writes, reads as 0).
pub(crate) fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// Unix seconds now, for ledger rows.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| int(d.as_secs()))
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl batchgate_store::MetaStore for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}
