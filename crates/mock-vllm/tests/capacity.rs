//! The batch model over HTTP: capacity, waiting, vLLM's gauges, priority
//! scheduling and the load figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_mock_vllm::{LoadStats, MockConfig, MockHandle, MockVllm, SchedulingPolicy};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn start(capacity: usize, scheduling: SchedulingPolicy, latency_ms: u64) -> MockHandle {
    MockVllm::start(MockConfig {
        capacity: Some(capacity),
        scheduling,
        latency: Duration::from_millis(latency_ms),
        ..MockConfig::default()
    })
    .await
    .expect("start mock")
}

fn chat(priority: Option<i64>) -> Value {
    let mut body = json!({"model": batchgate_mock_vllm::DEFAULT_MODEL,
        "messages": [{"role": "user", "content": "hi"}]});
    if let Some(p) = priority {
        body["priority"] = json!(p);
    }
    body
}

/// Sends one chat request in its own task; resolves to its status.
fn send(mock: &MockHandle, body: Value) -> tokio::task::JoinHandle<StatusCode> {
    let url = format!("{}/v1/chat/completions", mock.base_url());
    tokio::spawn(async move {
        let resp = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap();
        resp.status()
    })
}

/// The value of one `vllm:*` series in the mock's `/metrics`.
async fn gauge(mock: &MockHandle, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", mock.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{name}{{model_name=");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Waits (bounded) until the mock shows `running` and `waiting`.
async fn until_counts(mock: &MockHandle, running: usize, waiting: usize) {
    for _ in 0..500 {
        let load = mock.load();
        if (load.running, load.waiting) == (running, waiting) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "never reached {running} running / {waiting} waiting: {:?}",
        mock.load()
    );
}

#[tokio::test]
async fn capacity_bounds_running_and_gauges_show_the_queue() {
    let mock = start(2, SchedulingPolicy::Fcfs, 1_000).await;
    let sent: Vec<_> = (0..5).map(|_| send(&mock, chat(None))).collect();
    until_counts(&mock, 2, 3).await;
    assert_eq!(gauge(&mock, "vllm:num_requests_running").await, 2.0);
    assert_eq!(gauge(&mock, "vllm:num_requests_waiting").await, 3.0);
    assert_eq!(gauge(&mock, "vllm:kv_cache_usage_perc").await, 1.0);
    for s in sent {
        assert_eq!(s.await.unwrap(), StatusCode::OK);
    }
    let load: LoadStats = reqwest::get(format!("{}/mock/load", mock.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(load.completed, 5);
    assert_eq!(load.max_waiting, 3);
    assert_eq!((load.running, load.waiting), (0, 0));
    // Three waves of at most two: the queue averaged more than one.
    assert!(load.avg_waiting > 1.0, "{load:?}");
    assert!(
        load.avg_running > 1.0 && load.avg_running <= 2.0,
        "{load:?}"
    );
    assert_eq!(gauge(&mock, "vllm:generation_tokens_total").await, 80.0);
    mock.shutdown().await;
}

#[tokio::test]
async fn priority_scheduling_runs_lower_priority_values_first() {
    let mock = start(1, SchedulingPolicy::Priority, 300).await;
    let blocker = send(&mock, chat(None));
    until_counts(&mock, 1, 0).await;
    let low: Vec<_> = (0..2).map(|_| send(&mock, chat(Some(10)))).collect();
    until_counts(&mock, 1, 2).await;
    let urgent = send(&mock, chat(Some(-5)));
    until_counts(&mock, 1, 3).await;
    assert_eq!(blocker.await.unwrap(), StatusCode::OK);
    // The urgent request ran next: when it is done one low one is still
    // waiting behind the other.
    assert_eq!(urgent.await.unwrap(), StatusCode::OK);
    let load = mock.load();
    assert_eq!((load.running, load.waiting), (1, 1), "{load:?}");
    for s in low {
        assert_eq!(s.await.unwrap(), StatusCode::OK);
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn fcfs_refuses_a_priority_as_vllm_does() {
    let mock = start(4, SchedulingPolicy::Fcfs, 0).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .json(&chat(Some(3)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "Got priority 3 but Priority scheduling is not enabled."
    );
    assert_eq!(send(&mock, chat(Some(0))).await.unwrap(), StatusCode::OK);
    mock.shutdown().await;
}
