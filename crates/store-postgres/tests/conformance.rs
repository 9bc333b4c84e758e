//! The store conformance suite (`batchgate_store::conformance`) on
//! PostgreSQL: each check in a scratch schema of its own on the test
//! database; a second handle is a second pool, as another gateway
//! instance would have.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use batchgate_store::conformance::Backend;
use batchgate_store::MetaStore;
use batchgate_store_postgres::testing::Scratch;
use futures::FutureExt;

async fn postgres() -> Backend {
    let scratch = Arc::new(Scratch::new().await);
    let store = scratch.open().await.unwrap();
    let again = scratch.clone();
    let open_again = move || {
        let scratch = again.clone();
        async move { Arc::new(scratch.open().await.unwrap()) as Arc<dyn MetaStore> }.boxed()
    };
    Backend::new("postgres", Arc::new(store), open_again, scratch)
}

batchgate_store::conformance_tests!(postgres);
