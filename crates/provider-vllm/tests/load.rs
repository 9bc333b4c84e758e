//! vLLM's load, read by the `hosted_vllm` upstream from a server's
//! `/metrics` (mock-vllm's batch model, which exports vLLM's gauges).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use batchgate_config::Config;
use batchgate_core::ServerLoad;
use batchgate_mock_vllm::{MockConfig, MockVllm, DEFAULT_MODEL};
use serde_json::{json, Value};

#[tokio::test]
async fn the_upstream_reads_running_waiting_and_cache_from_metrics() {
    let mock = MockVllm::start(MockConfig {
        capacity: Some(2),
        latency: Duration::from_secs(2),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let yaml = format!(
        "model_list:\n- model_name: m\n  litellm_params: {{model: hosted_vllm/{DEFAULT_MODEL}, api_base: '{}'}}\n",
        mock.base_url()
    );
    let cfg = Config::from_yaml(&yaml, &["hosted_vllm"], &|_| None).unwrap();
    let d = Arc::new(cfg.deployments[0].clone());
    let http = batchgate_upstream_openai::client().unwrap();
    let up = batchgate_provider_vllm::upstream(&http, &d);
    let idle = up.load().await;
    assert_eq!(
        idle,
        Some(ServerLoad {
            running: 0.0,
            waiting: 0.0,
            kv_cache_usage: Some(0.0)
        })
    );
    let Value::Object(body) =
        json!({"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}]})
    else {
        unreachable!()
    };
    let sends: Vec<_> = (0..3)
        .map(|_| {
            let (up, body) = (up.clone(), body.clone());
            tokio::spawn(async move { up.send("/v1/chat/completions", &body).await })
        })
        .collect();
    let mut busy = None;
    for _ in 0..200 {
        busy = up.load().await;
        if busy.is_some_and(|l| l.waiting > 0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        busy,
        Some(ServerLoad {
            running: 2.0,
            waiting: 1.0,
            kv_cache_usage: Some(1.0)
        })
    );
    for s in sends {
        s.await.unwrap();
    }
}

#[tokio::test]
async fn no_metrics_route_is_no_load() {
    let d = Arc::new(
        Config::from_yaml(
            "model_list:\n- model_name: m\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://127.0.0.1:9'}\n",
            &["hosted_vllm"],
            &|_| None,
        )
        .unwrap()
        .deployments[0]
            .clone(),
    );
    let http = batchgate_upstream_openai::client().unwrap();
    let up = batchgate_provider_vllm::upstream(&http, &d);
    assert_eq!(up.load().await, None);
}
