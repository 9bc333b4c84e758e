//! What only a shared server has: instances migrating one database at
//! once, and connections that break and come back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use batchgate_core::ApiError;
use batchgate_store::{BatchStore, MetaStore};
use batchgate_store_postgres::testing::{test_database_url, Scratch};
use batchgate_store_postgres::PostgresStore;
use sqlx::{Connection, PgConnection};

fn migration_files() -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    std::fs::read_dir(dir).unwrap().count() as i64
}

/// Eight instances starting at once on an empty schema: all start, and
/// each migration ran exactly once (sqlx's migrator serializes them on an
/// advisory lock; without it they fail on each other's CREATE TABLEs).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_at_once_migrate_once() {
    let scratch = Scratch::new().await;
    let opened = futures::future::join_all((0..8).map(|_| scratch.open())).await;
    let stores: Vec<PostgresStore> = opened.into_iter().map(Result::unwrap).collect();
    let store = &stores[0];
    let (applied, ok): (i64, bool) = sqlx::query_as(&format!(
        "SELECT COUNT(*), BOOL_AND(success) FROM {}._sqlx_migrations",
        scratch.schema()
    ))
    .fetch_one(&mut PgConnection::connect(&test_database_url()).await.unwrap())
    .await
    .unwrap();
    assert_eq!(applied, migration_files());
    assert!(ok);
    store.ping().await.unwrap();
    for s in &stores {
        s.close().await;
    }
}

/// A server that refuses connections is "unavailable" (503, retry), not an
/// internal error.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let started = Instant::now();
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(!err.is_storage_full());
    assert_eq!(ApiError::from(err).status, 503);
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Connections killed under a running store (a failover, an admin's
/// pg_terminate_backend): calls fail as unavailable at most, and the store
/// heals by itself.
#[tokio::test]
async fn killed_connections_heal() {
    let scratch = Scratch::new().await;
    let store = scratch.open().await.unwrap();
    let mut admin = PgConnection::connect(&test_database_url()).await.unwrap();
    store.ping().await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(scratch.schema())
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the store's connections were found");
    let mut healed = false;
    for _ in 0..5 {
        match store.get_batch("none").await {
            Ok(None) => {
                healed = true;
                break;
            }
            Ok(Some(_)) => unreachable!(),
            Err(e) => assert!(e.is_unavailable(), "{e:?}"),
        }
    }
    assert!(healed, "the store works again");
    store.close().await;
}
