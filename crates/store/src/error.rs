//! Storage failures.

use batchgate_core::ApiError;

/// Anything the store can fail with. None of these are the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("blob store: {0}")]
    Blob(#[from] object_store::Error),
    #[error("blob path: {0}")]
    Path(#[from] object_store::path::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A storage setting that cannot work (e.g. an unsupported URL).
    #[error("{0}")]
    Config(String),
    /// A fenced write whose lease no longer holds the batch.
    #[error("lease lost: another runner holds the batch now")]
    LeaseLost,
}

impl StoreError {
    /// Whether the failure is the disk (or database) being full, looked
    /// for through the whole error chain: SQLite's `SQLITE_FULL`, or an
    /// I/O error `ENOSPC` / `EDQUOT` under any wrapper.
    pub fn is_storage_full(&self) -> bool {
        if let StoreError::Database(sqlx::Error::Database(db)) = self {
            // SQLITE_FULL and its extended codes; Postgres' disk_full.
            let code = db.code();
            if matches!(code.as_deref(), Some("13" | "53100")) {
                return true;
            }
        }
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if is_full_io(io) {
                    return true;
                }
            }
            cur = e.source();
        }
        false
    }
}

impl StoreError {
    /// Whether the store could not be reached or was too busy to answer,
    /// so the same call can succeed a little later: no free connection in
    /// time, a connection lost or refused (a database server restarting or
    /// unreachable), or a server refusing more connections, shutting down,
    /// or aborting a transaction for a conflict (PostgreSQL's SQLSTATE
    /// classes 08 and 57P, 53300, 40001, 40P01).
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                code.starts_with("08")
                    || code.starts_with("57P")
                    || matches!(&*code, "53300" | "40001" | "40P01")
            }),
            _ => false,
        }
    }
}

/// `ENOSPC` (28) or `EDQUOT` (122 on Linux).
pub fn is_full_io(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(28 | 122))
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "store failure");
        if err.is_storage_full() {
            return ApiError::new(
                507,
                "server_error",
                "The gateway's storage is full. Free space (for example, delete files you no \
                 longer need) and retry.",
            )
            .with_code("storage_full");
        }
        if err.is_unavailable() {
            return ApiError::unavailable("The store is busy or unreachable; retry shortly.");
        }
        ApiError::internal("The gateway could not access its store.")
    }
}
