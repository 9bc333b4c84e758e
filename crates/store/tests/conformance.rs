//! The store conformance suite (`batchgate_store::conformance`) on the
//! embedded SQLite backend: each check on a fresh database in a temporary
//! directory; a second handle is a second pool on the same file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use batchgate_store::conformance::Backend;
use batchgate_store::{MetaStore, SqliteStore};
use futures::FutureExt;

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let open_again = move || {
        let path = path.clone();
        async move { Arc::new(SqliteStore::open(&path).await.unwrap()) as Arc<dyn MetaStore> }
            .boxed()
    };
    Backend::new("sqlite", Arc::new(store), open_again, dir)
}

batchgate_store::conformance_tests!(sqlite);
