//! Adaptive concurrency end to end: the real binary against mock-vllm's
//! batch model. What is asserted is where the limit settles and the queue
//! the batch left on the server, never how long anything took.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_mock_vllm::{SchedulingPolicy, DEFAULT_MODEL};
use batchgate_tests::{
    chat_lines, config_of_entries, model_entry, Gateway, MockConfig, MockHandle, MockVllm,
};

async fn server(capacity: usize, latency_ms: u64, scheduling: SchedulingPolicy) -> MockHandle {
    MockVllm::start(MockConfig {
        capacity: Some(capacity),
        latency: Duration::from_millis(latency_ms),
        scheduling,
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

/// The value of `name{…model="<model>"…}` in the gateway's `/metrics`.
async fn gauge(gw: &Gateway, name: &str, model: &str) -> f64 {
    let text = gw
        .http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let label = format!("model=\"{model}\"");
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {model} in\n{text}"))
}

#[tokio::test]
async fn the_limit_settles_at_each_servers_capacity_down_and_up() {
    // Both start at 16: one must come down to 8, the other climb to 64.
    let small = server(8, 20, SchedulingPolicy::Fcfs).await;
    let big = server(64, 100, SchedulingPolicy::Fcfs).await;
    let entries = [
        model_entry("small", DEFAULT_MODEL, &small.base_url(), &[]),
        model_entry("big", DEFAULT_MODEL, &big.base_url(), &[]),
    ];
    let gw = Gateway::start(&config_of_entries(&entries, ""))
        .await
        .unwrap();
    for (model, mock, capacity, lines) in [("small", &small, 8.0, 1500), ("big", &big, 64.0, 3000)]
    {
        let done = gw
            .run_chat_batch(model, chat_lines(model, lines), Duration::from_secs(300))
            .await
            .unwrap();
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["request_counts"]["completed"], lines);
        let limit = gauge(&gw, "batchgate_deployment_concurrency_limit", model).await;
        let load = mock.load();
        eprintln!("{model}: limit {limit}, server {load:?}");
        assert!(
            limit >= capacity && limit <= capacity * 1.25 + 2.0,
            "{model}: limit {limit} for a capacity of {capacity}"
        );
        assert!(
            load.avg_waiting <= (capacity * 0.1).max(2.0),
            "{model}: the batch left a queue: {load:?}"
        );
        // The server ran close to full (a fixed 16 would run a quarter of
        // `big`, and half of `small` would wait).
        assert!(load.avg_running >= capacity * 0.75, "{model}: {load:?}");
    }
}

#[tokio::test]
async fn batch_priority_is_sent_only_where_configured() {
    let fcfs = server(4, 0, SchedulingPolicy::Fcfs).await;
    let by_priority = server(4, 0, SchedulingPolicy::Priority).await;
    let low = [("batch_priority", "10")];
    let entries = [
        model_entry("plain", DEFAULT_MODEL, &fcfs.base_url(), &[]),
        model_entry("yielding", DEFAULT_MODEL, &by_priority.base_url(), &low),
        // Misconfigured: a priority towards a server that does not schedule
        // by it, which refuses every line as vLLM does.
        model_entry("refused", DEFAULT_MODEL, &fcfs.base_url(), &low),
    ];
    let gw = Gateway::start(&config_of_entries(&entries, ""))
        .await
        .unwrap();
    for (model, completed, failed) in [("plain", 20, 0), ("yielding", 20, 0), ("refused", 0, 20)] {
        let done = gw
            .run_chat_batch(model, chat_lines(model, 20), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            done["request_counts"]["completed"], completed,
            "{model}: {done}"
        );
        assert_eq!(done["request_counts"]["failed"], failed, "{model}: {done}");
        if failed > 0 {
            let (_, errors) = gw.results(&done).await.unwrap();
            let message = errors[0]["response"]["body"]["error"]["message"].to_string();
            assert!(
                message.contains("Priority scheduling is not enabled"),
                "{message}"
            );
        }
    }
}
