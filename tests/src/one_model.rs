//! One model (`my-vllm-model`) on one mock-vllm: the setup most batch
//! tests share.

use std::time::Duration;

use serde_json::Value;

use crate::{
    chat_lines, config_of_entries, model_entry, Gateway, MockConfig, MockHandle, MockVllm,
};

pub const MODEL: &str = "my-vllm-model";
pub const CHAT: &str = "/v1/chat/completions";
pub const WAIT: Duration = Duration::from_secs(120);

pub async fn mock(latency_ms: u64) -> MockHandle {
    MockVllm::start(MockConfig {
        latency: Duration::from_millis(latency_ms),
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

/// A gateway with one deployment of `MODEL` on `mock`, with extra
/// `litellm_params` and extra YAML.
pub async fn gateway(mock: &MockHandle, params: &[(&str, &str)], extra: &str) -> Gateway {
    let entry = model_entry(
        MODEL,
        batchgate_mock_vllm::DEFAULT_MODEL,
        &mock.base_url(),
        params,
    );
    Gateway::start(&config_of_entries(&[entry], extra))
        .await
        .unwrap()
}

/// Uploads `n` chat lines and creates a batch over them.
pub async fn chat_batch(gw: &Gateway, n: usize, window: &str) -> Value {
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, n))
        .await
        .unwrap();
    gw.create_batch(file["id"].as_str().unwrap(), CHAT, window)
        .await
        .unwrap()
}

pub fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}
