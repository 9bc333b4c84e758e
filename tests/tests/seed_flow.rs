//! The seed document's flow against the real binary: upload with
//! `x-litellm-model`, create a batch, poll, download the results.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_tests::{config, Gateway, MockConfig, MockVllm};

const SEED_JSONL: &str = r#"{"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "my-vllm-model", "messages": [{"role": "user", "content": "Hello!"}]}}
{"custom_id": "request-2", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "my-vllm-model", "messages": [{"role": "user", "content": "How are you?"}]}}
"#;

#[tokio::test]
async fn seed_curl_flow_completes_with_routed_ids() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&config(&[("my-vllm-model", &mock.base_url())], ""))
        .await
        .unwrap();

    let file = gw
        .upload("my-vllm-model", "batch_requests.jsonl", SEED_JSONL.into())
        .await
        .unwrap();
    let file_id = file["id"].as_str().unwrap();
    assert!(
        file_id.starts_with("file-") && file_id.len() <= 64,
        "{file_id}"
    );
    assert_eq!(file["purpose"], "batch");
    assert_eq!(file["status"], "processed");

    let batch = gw
        .create_batch(file_id, "/v1/chat/completions", "24h")
        .await
        .unwrap();
    assert_eq!(batch["status"], "validating");
    let batch_id = batch["id"].as_str().unwrap();
    assert!(batch_id.starts_with("batch_") && batch_id.len() <= 64);

    let done = gw
        .wait_batch(batch_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["total"], 2);
    assert_eq!(done["request_counts"]["completed"], 2);
    assert!(done["completed_at"].as_i64().is_some());
    assert!(done["error_file_id"].is_null());

    let out = gw.jsonl(done["output_file_id"].as_str()).await.unwrap();
    let mut ids: Vec<_> = out
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["request-1", "request-2"]);
    for line in &out {
        assert!(line["id"].as_str().unwrap().starts_with("batch_req_"));
        assert_eq!(line["response"]["status_code"], 200);
        assert!(line["response"]["request_id"].is_string());
        assert!(line["error"].is_null());
        // The gateway's public model name was rewritten to the served one.
        assert_eq!(
            line["response"]["body"]["model"],
            batchgate_tests::MockConfig::default().models[0]
        );
    }
    // Usage sums the deterministic mock usage: "Hello!" is 1 word, "How are you?" 3.
    assert_eq!(done["usage"]["input_tokens"], 4);
    assert_eq!(done["usage"]["output_tokens"], 32);
    assert_eq!(mock.stats().requests, 2);
}
