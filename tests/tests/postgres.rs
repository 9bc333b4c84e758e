//! The real binary on PostgreSQL: a batch runs to completion with all
//! metadata in the database, and two gateway processes sharing one
//! database and one blob store (the test S3 server when `cargo xtask ci`
//! runs one, else a shared `file://` directory) answer for each other's
//! files and batches. Each test works in a scratch schema of its own on the
//! test database (`BATCHGATE_TEST_DATABASE_URL`, by default
//! postgres://postgres@127.0.0.1:5432/test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_store_postgres::testing::Scratch;
use batchgate_tests::one_model::{self, id, CHAT, MODEL, WAIT};
use batchgate_tests::s3::Bucket;
use batchgate_tests::{
    assert_every_id_once, chat_lines, config_of_entries, model_entry, run_until_exit, Gateway,
    MockHandle,
};
use sqlx::{Connection, PgConnection};

const SECRET: &str = "a-fleet-wide-test-secret";

fn config(mock: &MockHandle, extra_general: &str, params: &[(&str, &str)]) -> String {
    let entry = model_entry(
        MODEL,
        batchgate_mock_vllm::DEFAULT_MODEL,
        &mock.base_url(),
        params,
    );
    // `config_of_entries` ends with the `general_settings:` block.
    config_of_entries(&[entry], extra_general)
}

/// Rows of `table` in the scratch schema, read straight from Postgres.
async fn rows(scratch: &Scratch, table: &str) -> i64 {
    let url = batchgate_store_postgres::testing::test_database_url();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let sql = format!("SELECT COUNT(*) FROM {}.{table}", scratch.schema());
    sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
}

#[tokio::test]
async fn a_batch_runs_to_completion_on_postgres() {
    let scratch = Scratch::new().await;
    let mock = one_model::mock(5).await;
    let general = format!(
        "  database_url: \"{}\"\n  id_secret: {SECRET}\n",
        scratch.url()
    );
    let mut gw = Gateway::start(&config(&mock, &general, &[])).await.unwrap();
    let done = gw
        .run_chat_batch(MODEL, chat_lines(MODEL, 20), WAIT)
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["completed"], 20, "{done}");
    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, 20);
    assert!(err.is_empty());

    // The metadata is in Postgres, not in an SQLite file beside the blobs.
    assert!(!gw.data_dir().join("batchgate.db").exists());
    assert_eq!(rows(&scratch, "batches").await, 1);
    assert_eq!(rows(&scratch, "files").await, 2, "input and output");
    assert_eq!(
        rows(&scratch, "batch_results").await,
        0,
        "the journal now lives in the output file"
    );
    // And it outlives the process.
    gw.restart().await.unwrap();
    let again = gw.batch(id(&done)).await.unwrap();
    assert_eq!(again["output_file_id"], done["output_file_id"]);
}

#[tokio::test]
async fn a_shared_database_needs_a_shared_id_secret() {
    let scratch = Scratch::new().await;
    let mock = one_model::mock(0).await;
    let cfg = config(&mock, "", &[]);
    let (status, stderr) = run_until_exit(&cfg, &[], &[("DATABASE_URL", &scratch.url())])
        .await
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("every instance must use the same ID secret")
            && stderr.contains("BATCHGATE_ID_SECRET")
            && stderr.contains("general_settings.id_secret"),
        "{stderr}"
    );
}

/// The environment of a fleet's blob store: a fresh bucket on the test S3
/// server when there is one, else a directory both gateways are given.
async fn shared_storage(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    match Bucket::create("fleet").await.unwrap() {
        Some(bucket) => {
            let mut env = bucket.env();
            env.push((
                "BATCHGATE_STORAGE_URL",
                format!("s3://{}/fleet", bucket.name),
            ));
            env
        }
        None => vec![("BATCHGATE_STORAGE_URL", format!("file://{}", dir.display()))],
    }
}

#[tokio::test]
async fn two_gateways_answer_for_each_other() {
    let scratch = Scratch::new().await;
    // Slow enough that a 40-line batch is still running when it is
    // cancelled.
    let mock = one_model::mock(100).await;
    let cfg = config(&mock, "", &[("max_parallel_requests", "2")]);
    let blobs = tempfile::tempdir().unwrap();
    let mut env = shared_storage(blobs.path()).await;
    env.push(("DATABASE_URL", scratch.url()));
    env.push(("BATCHGATE_ID_SECRET", SECRET.into()));
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Gateway::start_with(&cfg, &[], &envs).await.unwrap();
    let b = Gateway::start_with(&cfg, &[], &envs).await.unwrap();

    // A file uploaded through A is listed, retrieved and read through B.
    let lines = chat_lines(MODEL, 6);
    let file = a.upload(MODEL, "in.jsonl", lines.clone()).await.unwrap();
    let (status, seen) = b.get(&format!("/v1/files/{}", id(&file))).await.unwrap();
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen, file);
    assert_eq!(b.content(id(&file)).await.unwrap().as_bytes(), &lines[..]);

    // A batch created on A is retrieved through B and runs to the end,
    // whichever instance claims it; its results download through B.
    let created = a.create_batch(id(&file), CHAT, "24h").await.unwrap();
    let (status, on_b) = b
        .get(&format!("/v1/batches/{}", id(&created)))
        .await
        .unwrap();
    assert_eq!((status, &on_b["id"]), (200, &created["id"]), "{on_b}");
    let done = b.wait_batch(id(&created), WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let (out, err) = b.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, 6);
    let (_, listed) = b.get("/v1/batches").await.unwrap();
    assert_eq!(listed["data"][0]["id"], created["id"], "{listed}");

    // A batch created on B is cancelled through A.
    let slow = b
        .upload(MODEL, "slow.jsonl", chat_lines(MODEL, 40))
        .await
        .unwrap();
    let running = b.create_batch(id(&slow), CHAT, "24h").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Whichever instance claimed it, both name that one as its holder
    // (GET /fleet reads the shared lease columns).
    b.wait_batch_until(id(&running), WAIT, |x| x["status"] == "in_progress")
        .await
        .unwrap();
    let holders = |fleet: &serde_json::Value| -> Vec<(String, u64)> {
        fleet["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["batches"].as_u64().unwrap_or(0) > 0)
            .map(|i| {
                (
                    i["id"].as_str().unwrap().into(),
                    i["batches"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (_, on_a) = a.get("/fleet").await.unwrap();
    let (_, on_b) = b.get("/fleet").await.unwrap();
    assert_ne!(on_a["instance"], on_b["instance"]);
    assert_eq!(holders(&on_a).len(), 1, "{on_a}");
    assert_eq!(holders(&on_a), holders(&on_b), "{on_a} {on_b}");
    let (status, cancelling) = a
        .post(
            &format!("/v1/batches/{}/cancel", id(&running)),
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{cancelling}");
    let ended = b.wait_batch(id(&running), WAIT).await.unwrap();
    assert_eq!(ended["status"], "cancelled", "{ended}");
    let finished = ended["request_counts"]["completed"].as_u64().unwrap();
    assert!(finished < 40, "cancelled before the end: {ended}");
}
