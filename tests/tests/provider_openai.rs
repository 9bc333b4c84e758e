//! The second provider: LiteLLM's `openai/<model>` with an `api_base`, the
//! way users reach SGLang, TGI, llama.cpp's server or Ollama. It is the
//! generic OpenAI-compatible provider with its own flavor: batches run in
//! the gateway against the server, its health is asked on `/v1/models`, and
//! it sits beside a `hosted_vllm` deployment in one config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_mock_vllm::DEFAULT_MODEL;
use batchgate_tests::{
    assert_every_id_once, chat_lines, config_of_entries, model_entry, Gateway, MockConfig,
    MockVllm, MASTER_KEY,
};

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn an_openai_compatible_server_runs_batches_beside_a_vllm_one() {
    let sglang = MockVllm::start(MockConfig::default()).await.unwrap();
    let vllm = MockVllm::start(MockConfig::default()).await.unwrap();
    let openai_entry = format!(
        "- model_name: on-sglang\n  litellm_params:\n    model: openai/{DEFAULT_MODEL}\n    api_base: {}\n",
        sglang.base_url()
    );
    let vllm_entry = model_entry("on-vllm", DEFAULT_MODEL, &vllm.base_url(), &[]);
    let gw = Gateway::start(&config_of_entries(&[openai_entry, vllm_entry], ""))
        .await
        .unwrap();

    for (model, mock) in [("on-sglang", &sglang), ("on-vllm", &vllm)] {
        let done = gw
            .run_chat_batch(model, chat_lines(model, 20), WAIT)
            .await
            .unwrap();
        assert_eq!(done["status"], "completed", "{model}: {done}");
        let (out, err) = gw.results(&done).await.unwrap();
        assert_every_id_once(&out, &err, 20);
        assert_eq!(out[0]["response"]["body"]["model"], DEFAULT_MODEL);
        assert_eq!(mock.stats().requests, 20, "{model} went to its own server");
    }

    // Listing through one model's provider shows that model's batches only.
    for model in ["on-sglang", "on-vllm"] {
        let page: serde_json::Value = reqwest::Client::new()
            .get(gw.url("/v1/batches"))
            .bearer_auth(MASTER_KEY)
            .header("x-litellm-model", model)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let models: Vec<_> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["model"].clone())
            .collect();
        assert_eq!(models, [serde_json::json!(model)], "{page}");
    }

    let (status, health) = gw.get("/health").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(health["healthy_count"], 2, "{health}");
}
