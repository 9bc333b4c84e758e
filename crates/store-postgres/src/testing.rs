//! Scratch schemas for tests: each test gets a schema of its own in the
//! test database, so tests run in parallel and on a fresh machine, and the
//! schema is dropped when the test ends.
//!
//! The database is `BATCHGATE_TEST_DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test` (trust auth). A dedicated
//! variable, not `DATABASE_URL`: that one makes a gateway use Postgres, and
//! a developer's shell may set it for other reasons.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;

use batchgate_store::StoreError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::PostgresStore;

/// The test database when `BATCHGATE_TEST_DATABASE_URL` is unset.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test database's URL.
pub fn test_database_url() -> String {
    std::env::var("BATCHGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_string())
}

/// A schema of the test's own, created empty; dropped (with everything in
/// it) on drop.
#[derive(Debug)]
pub struct Scratch {
    base: String,
    schema: String,
}

impl Scratch {
    pub async fn new() -> Scratch {
        let base = test_database_url();
        let schema = format!("bg_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnectOptions::from_str(&base)
            .unwrap()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {base}: {e}"));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        Scratch { base, schema }
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A URL whose connections work in this schema (and carry its name as
    /// `application_name`, so a test can find them): what a gateway's
    /// `database_url` would be.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        let schema = &self.schema;
        format!(
            "{}{sep}options[search_path]={schema}&application_name={schema}",
            self.base
        )
    }

    /// A store (its own pool) on this schema, migrated.
    pub async fn open(&self) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(&self.url()).await
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Drop has no runtime to borrow (and may run inside one), so the
        // schema is dropped from a thread with a runtime of its own.
        let (base, schema) = (self.base.clone(), self.schema.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let mut conn = PgConnectOptions::from_str(&base)
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                // Never hang a test run on a lock a leaked connection holds.
                sqlx::query("SET lock_timeout = '5s'")
                    .execute(&mut conn)
                    .await
                    .ok()?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}
