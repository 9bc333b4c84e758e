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
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "store failure");
        match err {
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                ApiError::unavailable("The store is busy; retry shortly.")
            }
            _ => ApiError::internal("The gateway could not access its store."),
        }
    }
}
