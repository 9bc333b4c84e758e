//! `OpenAiUpstream` against a real OpenAI-compatible server (mock-vllm):
//! what it sends, what it reports back, and how it tells up from down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use batchgate_core::{BatchApiMode, Deployment, Reply, Upstream};
use batchgate_mock_vllm::{Faults, MockConfig, MockVllm, DEFAULT_MODEL};
use batchgate_upstream_openai::{client, OpenAiUpstream};
use serde_json::{json, Value};

fn deployment(api_base: &str, api_key: Option<&str>) -> Arc<Deployment> {
    Arc::new(Deployment {
        id: "d1".into(),
        model_name: "m".into(),
        provider: "openai".into(),
        served_model: DEFAULT_MODEL.into(),
        api_base: api_base.into(),
        api_key: api_key.map(str::to_string),
        max_parallel_requests: 4,
        adaptive_concurrency: false,
        batch_priority: None,
        timeout: Duration::from_secs(5),
        batch_api: BatchApiMode::Gateway,
        endpoints: vec!["/v1/chat/completions".into()],
        extra_params: Default::default(),
        model_info: Default::default(),
    })
}

fn chat() -> serde_json::Map<String, Value> {
    let Value::Object(body) =
        json!({"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}]})
    else {
        unreachable!()
    };
    body
}

#[tokio::test]
async fn sends_with_the_key_and_reports_the_answer() {
    let mock = MockVllm::start(MockConfig {
        api_key: Some("sk-up".into()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let up = OpenAiUpstream::new(
        client().unwrap(),
        deployment(&mock.base_url(), Some("sk-up")),
        "vllm",
        "/health",
    );
    assert_eq!(up.system(), "vllm");
    match up.send("/v1/chat/completions", &chat()).await {
        Reply::Answered { status, body, .. } => {
            assert_eq!(status, 200);
            let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
            assert_eq!(body["object"], "chat.completion");
            assert!(up.usage("/v1/chat/completions", &body).input_tokens > 0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(up.health().await, Ok(()));
    // Without the key the server refuses: an answer, not an outage.
    let keyless = OpenAiUpstream::new(
        client().unwrap(),
        deployment(&mock.base_url(), None),
        "vllm",
        "/health",
    );
    match keyless.send("/v1/chat/completions", &chat()).await {
        Reply::Answered { status, .. } => assert_eq!(status, 401),
        other => panic!("{other:?}"),
    }
    assert_eq!(mock.stats().requests, 2);
}

#[tokio::test]
async fn reports_retry_after_and_server_errors() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let up = OpenAiUpstream::new(
        client().unwrap(),
        deployment(&mock.base_url(), None),
        "vllm",
        "/health",
    );
    mock.set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 7,
        ..Faults::default()
    });
    match up.send("/v1/chat/completions", &chat()).await {
        Reply::Answered {
            status,
            retry_after,
            ..
        } => {
            assert_eq!(status, 429);
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_is_gone_is_no_answer_and_unhealthy() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    mock.shutdown().await;
    let up = OpenAiUpstream::new(
        client().unwrap(),
        deployment(&base, None),
        "vllm",
        "/health",
    );
    assert!(matches!(
        up.send("/v1/chat/completions", &chat()).await,
        Reply::NoAnswer { .. }
    ));
    assert!(up.health().await.is_err());
}
