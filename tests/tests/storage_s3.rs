//! File bytes on an S3-compatible server (`general_settings.storage_url`):
//! uploads, batch inputs and results live in the bucket under the
//! configured prefix, nothing under the data directory, and they outlive
//! the process. A storage URL that cannot work stops the start with the
//! reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batchgate_tests::one_model::{mock, MODEL};
use batchgate_tests::s3::Bucket;
use batchgate_tests::{
    assert_every_id_once, chat_lines, config_of_entries, files_under, model_entry, run_until_exit,
    Gateway,
};
use std::time::Duration;

fn config(mock_url: &str, storage: &str) -> String {
    let entry = model_entry(MODEL, batchgate_mock_vllm::DEFAULT_MODEL, mock_url, &[]);
    let general = format!("  storage_url: {storage}\n");
    // `general_settings:` is opened by config_of_entries; add to it.
    config_of_entries(&[entry], "").replace(
        "general_settings:\n",
        &format!("general_settings:\n{general}"),
    )
}

#[tokio::test]
async fn batches_run_with_every_byte_in_the_bucket() {
    let Some(bucket) = Bucket::create("e2e").await.unwrap() else {
        return;
    };
    let upstream = mock(0).await;
    let env = bucket.env();
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let storage = format!("s3://{}/team-a/batchgate", bucket.name);
    let mut gw = Gateway::start_with(&config(&upstream.base_url(), &storage), &[], &envs)
        .await
        .unwrap();

    let batch = gw
        .run_chat_batch(MODEL, chat_lines(MODEL, 25), Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(batch["status"], "completed", "{batch}");
    let (out, err) = gw.results(&batch).await.unwrap();
    assert_every_id_once(&out, &err, 25);

    // Input, output: objects under the prefix; none on local disk.
    let keys = bucket.keys("team-a/batchgate/").await.unwrap();
    assert!(keys.len() >= 2, "objects in the bucket: {keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("team-a/batchgate/files/")),
        "{keys:?}"
    );
    assert!(
        files_under(&gw.data_dir().join("blobs")).is_empty(),
        "bytes leaked to local disk"
    );

    // A restarted gateway serves the same bytes from the bucket.
    let output_id = batch["output_file_id"].as_str().unwrap().to_string();
    let before = gw.content(&output_id).await.unwrap();
    gw.restart().await.unwrap();
    assert_eq!(gw.content(&output_id).await.unwrap(), before);

    // Deleting a file removes its object.
    let input_id = batch["input_file_id"].as_str().unwrap();
    let (status, _) = gw
        .http_delete(&format!("/v1/files/{input_id}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let after = bucket.keys("team-a/batchgate/").await.unwrap();
    assert_eq!(after.len(), keys.len() - 1, "{keys:?} -> {after:?}");
}

#[tokio::test]
async fn the_storage_url_can_come_from_the_environment() {
    let Some(bucket) = Bucket::create("env").await.unwrap() else {
        return;
    };
    let upstream = mock(0).await;
    let storage = format!("s3://{}/from-env", bucket.name);
    let mut env = bucket.env();
    env.push(("BATCHGATE_STORAGE_URL", storage));
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let entry = model_entry(
        MODEL,
        batchgate_mock_vllm::DEFAULT_MODEL,
        &upstream.base_url(),
        &[],
    );
    let gw = Gateway::start_with(&config_of_entries(&[entry], ""), &[], &envs)
        .await
        .unwrap();
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, 3))
        .await
        .unwrap();
    let id = file["id"].as_str().unwrap();
    assert_eq!(
        gw.content(id).await.unwrap().into_bytes(),
        chat_lines(MODEL, 3)
    );
    assert_eq!(bucket.keys("from-env/files/").await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unusable_storage_url_stops_the_start_with_the_reason() {
    let cfg = config("http://127.0.0.1:9", "gs://some-bucket/x");
    let (status, stderr) = run_until_exit(&cfg, &[], &[]).await.unwrap();
    assert!(!status.success());
    assert!(stderr.contains("gs://some-bucket/x"), "{stderr}");
    assert!(stderr.contains("s3://"), "{stderr}");
}
