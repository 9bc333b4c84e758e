//! One model served by two replicas (two `model_list` entries with the same
//! `model_name`): a batch's lines are spread over both, each within its own
//! `max_parallel_requests`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_mock_vllm::DEFAULT_MODEL;
use batchgate_tests::{
    assert_every_id_once, chat_lines, config_of_entries, model_entry, Gateway, MockConfig, MockVllm,
};

const MODEL: &str = "my-vllm-model";

#[tokio::test]
async fn lines_spread_over_both_replicas_of_a_model() {
    let start = || {
        MockVllm::start(MockConfig {
            latency: Duration::from_millis(10),
            ..MockConfig::default()
        })
    };
    let (a, b) = (start().await.unwrap(), start().await.unwrap());
    let params = [("max_parallel_requests", "4")];
    let entries = [
        model_entry(MODEL, DEFAULT_MODEL, &a.base_url(), &params),
        model_entry(MODEL, DEFAULT_MODEL, &b.base_url(), &params),
    ];
    let gw = Gateway::start(&config_of_entries(&entries, ""))
        .await
        .unwrap();

    let n = 200;
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, n))
        .await
        .unwrap();
    let created = gw
        .create_batch(file["id"].as_str().unwrap(), "/v1/chat/completions", "24h")
        .await
        .unwrap();
    let done = gw
        .wait_batch(created["id"].as_str().unwrap(), Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["completed"], n);
    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);

    let (sa, sb) = (a.stats().requests, b.stats().requests);
    eprintln!("replica A: {sa} requests, replica B: {sb} requests");
    assert_eq!(
        sa + sb,
        n as u64,
        "each line went to exactly one replica once"
    );
    let quarter = n as u64 / 4;
    assert!(
        sa >= quarter && sb >= quarter,
        "uneven spread: A {sa}, B {sb}"
    );
    // No body went to both replicas.
    let sa_bodies = a.stats().by_body;
    assert!(b.stats().by_body.keys().all(|k| !sa_bodies.contains_key(k)));
}
