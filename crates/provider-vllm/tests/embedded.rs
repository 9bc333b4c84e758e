//! batchgate embedded as a library, straight against a vLLM server (here
//! mock-vllm), configured from `HOSTED_VLLM_API_BASE` like the seed's SDK
//! example.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_core::{BatchApi, BatchStatus, CreateBatchRequest, FileApi, FilePurpose, Upload};
use batchgate_mock_vllm::{MockConfig, MockVllm, DEFAULT_MODEL};
use batchgate_provider_vllm::Embedded;
use futures::StreamExt;

#[tokio::test]
async fn embedded_provider_runs_a_batch_from_env_config() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    // The only test in this binary: no other thread reads the environment.
    std::env::set_var("HOSTED_VLLM_API_BASE", mock.base_url());
    let dir = tempfile::tempdir().unwrap();
    let bg = Embedded::from_env("my-vllm-model", DEFAULT_MODEL, dir.path())
        .await
        .unwrap();
    let lines = "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"my-vllm-model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi there\"}]}}\n";
    let upload = Upload {
        filename: "in.jsonl".into(),
        purpose: FilePurpose::Batch,
        expires_after: None,
        body: futures::stream::iter([Ok(bytes::Bytes::from(lines))]).boxed(),
    };
    let file = bg
        .provider
        .create_file(&bg.ctx(), &bg.deployment, upload)
        .await
        .unwrap();
    let request = CreateBatchRequest {
        input_file_id: file.id.clone(),
        endpoint: "/v1/chat/completions".into(),
        completion_window: "24h".into(),
        metadata: None,
        output_expires_after: None,
    };
    let batch = bg
        .provider
        .create_batch(&bg.ctx(), &bg.file(&file.id).unwrap(), request)
        .await
        .unwrap();
    let mut done = None;
    for _ in 0..300 {
        let b = bg
            .provider
            .retrieve_batch(&bg.ctx(), &bg.batch(&batch.id).unwrap())
            .await
            .unwrap();
        if b.status.is_terminal() {
            done = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = done.expect("batch did not end");
    assert_eq!(done.status, BatchStatus::Completed);
    let output = bg.file(done.output_file_id.as_deref().unwrap()).unwrap();
    let mut body = bg
        .provider
        .file_content(&bg.ctx(), &output)
        .await
        .unwrap()
        .body;
    let mut text = Vec::new();
    while let Some(chunk) = body.next().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    let line: serde_json::Value = serde_json::from_slice(text.trim_ascii_end()).unwrap();
    assert_eq!(line["custom_id"], "a");
    assert_eq!(line["response"]["body"]["model"], DEFAULT_MODEL);
    assert_eq!(mock.stats().requests, 1);
}
