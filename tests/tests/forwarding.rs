//! Forwarding: a deployment whose upstream has its own Files and Batch API
//! (here another batchgate in front of mock-vllm) gets calls forwarded, and
//! every ID in every answer is a gateway ID that routes back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_tests::{chat_lines, config, Gateway, MockConfig, MockVllm, MASTER_KEY};
use serde_json::Value;

fn front_config(upstream: &str, mode: &str) -> String {
    format!(
        "model_list:\n- model_name: front-model\n  litellm_params:\n    model: hosted_vllm/back-model\n    api_base: {upstream}/v1\n    api_key: {MASTER_KEY}\n    batch_api: {mode}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
    )
}

fn all_ids(batch: &Value) -> Vec<String> {
    ["id", "input_file_id", "output_file_id", "error_file_id"]
        .iter()
        .filter_map(|k| batch[k].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn upstream_mode_forwards_and_reencodes_every_id() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let back = Gateway::start(&config(&[("back-model", &mock.base_url())], ""))
        .await
        .unwrap();
    let front = Gateway::start(&front_config(&back.base, "upstream"))
        .await
        .unwrap();

    let file = front
        .upload("front-model", "in.jsonl", chat_lines("back-model", 5))
        .await
        .unwrap();
    let file_id = file["id"].as_str().unwrap().to_string();
    assert!(file_id.starts_with("file-") && file_id.len() <= 64);

    // The file lives on the back gateway, under an ID the front never shows.
    let (_, back_files) = back.get("/v1/files").await.unwrap();
    let back_file_id = back_files["data"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(back_file_id, file_id);

    let (status, retrieved) = front.get(&format!("/v1/files/{file_id}")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(retrieved["id"], file_id.as_str());
    assert_eq!(retrieved["bytes"], file["bytes"]);

    let batch = front
        .create_batch(&file_id, "/v1/chat/completions", "24h")
        .await
        .unwrap();
    let batch_id = batch["id"].as_str().unwrap().to_string();
    assert_eq!(batch["input_file_id"], file_id.as_str());
    let done = front
        .wait_batch(&batch_id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["completed"], 5);

    // No raw upstream ID leaks: every ID routes through the front.
    let (_, back_batches) = back.get("/v1/batches").await.unwrap();
    let back_ids: Vec<String> = back_batches["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(all_ids)
        .collect();
    for id in all_ids(&done) {
        assert!(!back_ids.contains(&id), "upstream id {id} leaked");
    }
    let out = front.jsonl(done["output_file_id"].as_str()).await.unwrap();
    assert_eq!(out.len(), 5);

    // Listing through the deployment asks the upstream, re-encoded.
    let r = front
        .http
        .get(front.url("/v1/batches"))
        .bearer_auth(MASTER_KEY)
        .header("x-litellm-model", "front-model")
        .send()
        .await
        .unwrap();
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["data"][0]["id"], batch_id.as_str());
    assert_eq!(listed["data"][0]["output_file_id"], done["output_file_id"]);
    // The catalog lists it too, without a model.
    let (_, catalog) = front.get("/v1/batches").await.unwrap();
    assert_eq!(catalog["data"][0]["id"], batch_id.as_str());

    // Delete goes upstream too.
    let r = front
        .http
        .delete(front.url(&format!(
            "/v1/files/{}",
            done["output_file_id"].as_str().unwrap()
        )))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = front
        .get(&format!(
            "/v1/files/{}",
            done["output_file_id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn auto_mode_probes_the_upstream() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    // A plain vLLM has no /v1/batches: the gateway runs the batch itself.
    let direct = Gateway::start(&front_config(&mock.base_url(), "auto").replace(
        "hosted_vllm/back-model",
        &format!("hosted_vllm/{}", MockConfig::default().models[0]),
    ))
    .await
    .unwrap();
    let file = direct
        .upload("front-model", "in.jsonl", chat_lines("front-model", 3))
        .await
        .unwrap();
    let batch = direct
        .create_batch(file["id"].as_str().unwrap(), "/v1/chat/completions", "24h")
        .await
        .unwrap();
    let done = direct
        .wait_batch(batch["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(mock.stats().requests, 3);

    // Another gateway has the API: files go there.
    let back = Gateway::start(&config(&[("back-model", &mock.base_url())], ""))
        .await
        .unwrap();
    let front = Gateway::start(&front_config(&back.base, "auto"))
        .await
        .unwrap();
    front
        .upload("front-model", "in.jsonl", chat_lines("back-model", 2))
        .await
        .unwrap();
    let (_, back_files) = back.get("/v1/files").await.unwrap();
    assert_eq!(back_files["data"].as_array().unwrap().len(), 1);
}

/// One file means the same in both modes: lines naming the public model
/// (as they must for the gateway to run them) reach an upstream batch API
/// with the served name, as the engine would send them.
#[tokio::test]
async fn forwarded_files_get_the_served_model_name() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let back = Gateway::start(&config(&[("back-model", &mock.base_url())], ""))
        .await
        .unwrap();
    let front = Gateway::start(&front_config(&back.base, "upstream"))
        .await
        .unwrap();
    let file = front
        .upload("front-model", "in.jsonl", chat_lines("front-model", 5))
        .await
        .unwrap();
    let batch = front
        .create_batch(file["id"].as_str().unwrap(), "/v1/chat/completions", "24h")
        .await
        .unwrap();
    let done = front
        .wait_batch(batch["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["completed"], 5, "{done}");
    assert_eq!(mock.stats().requests, 5);
}
