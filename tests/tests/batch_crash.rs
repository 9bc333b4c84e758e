//! The gateway is SIGKILLed mid-batch and started again on the same data:
//! the batch resumes at once and completes with every line exactly once,
//! repeating upstream calls only for the lines whose results were not yet
//! committed when it died.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_mock_vllm::DEFAULT_MODEL;
use batchgate_tests::{
    assert_every_id_once, chat_lines, config_of_entries, model_entry, Gateway, MockConfig, MockVllm,
};

const MODEL: &str = "my-vllm-model";
const CHAT: &str = "/v1/chat/completions";
const WAIT: Duration = Duration::from_secs(180);

/// The deployment's `max_parallel_requests`.
const PARALLEL: u64 = 8;
/// Results the engine's writer commits in one transaction at most
/// (`MAX_COMMIT` in crates/engine/src/batch/journal.rs).
const MAX_COMMIT: u64 = 512;
/// Results queued for the writer at most (`RESULT_QUEUE` in the same file).
const RESULT_QUEUE: u64 = 512;
/// Lines answered upstream but not yet committed when the process dies, at
/// most: those holding a slot, those queued, those in the commit under way.
const UNCOMMITTED_BOUND: u64 = PARALLEL + RESULT_QUEUE + MAX_COMMIT;
/// A lease far longer than any wait here: a restarted process must take its
/// own batches back at once (same data directory, same instance id), not
/// after the lease lapses.
const LONG_LEASE: &str = "batch_settings:\n  lease_seconds: 3600\n";

async fn gateway(mock_base: &str) -> Gateway {
    let entry = model_entry(
        MODEL,
        DEFAULT_MODEL,
        mock_base,
        &[("max_parallel_requests", &PARALLEL.to_string())],
    );
    Gateway::start(&config_of_entries(&[entry], LONG_LEASE))
        .await
        .unwrap()
}

#[tokio::test]
async fn sigkill_mid_batch_resumes_without_losing_or_repeating_lines() {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(5),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut gw = gateway(&mock.base_url()).await;
    let n: u64 = 10_000;
    let file = gw
        .upload(MODEL, "big.jsonl", chat_lines(MODEL, n as usize))
        .await
        .unwrap();
    let created = gw
        .create_batch(file["id"].as_str().unwrap(), CHAT, "24h")
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();

    let before = gw
        .wait_batch_until(id, WAIT, |b| {
            b["request_counts"]["completed"].as_u64() >= Some(2_000)
        })
        .await
        .unwrap();
    gw.kill().await.unwrap();
    let calls_at_kill = mock.stats().requests;
    let committed_seen = before["request_counts"]["completed"].as_u64().unwrap();
    assert!(
        calls_at_kill < n,
        "the batch finished before the kill: {calls_at_kill} calls"
    );

    gw.restart().await.unwrap();
    let done = gw.wait_batch(id, WAIT).await.unwrap();
    let stats = mock.stats();
    let duplicates = stats.by_body.values().filter(|c| **c > 1).count() as u64;
    eprintln!(
        "crash test: lines={n} completed_seen_before_kill={committed_seen} upstream_calls_before_kill={calls_at_kill} \
         upstream_calls_after_restart={} total_upstream_calls={} duplicated_bodies={duplicates} bound={UNCOMMITTED_BOUND}",
        stats.requests - calls_at_kill,
        stats.requests,
    );

    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["total"], n);
    assert_eq!(done["request_counts"]["completed"], n, "{done}");
    assert_eq!(done["request_counts"]["failed"], 0, "{done}");
    let (out, err) = gw.results(&done).await.unwrap();
    assert_eq!(out.len() as u64, n);
    assert!(err.is_empty());
    assert_every_id_once(&out, &err, n as usize);
    // Usage counts every line once, whatever was repeated upstream.
    assert_eq!(done["usage"]["input_tokens"], 4 * n);
    assert_eq!(done["usage"]["output_tokens"], 16 * n);

    // Only lines uncommitted at the kill went upstream twice, and none more.
    assert_eq!(
        stats.by_body.len() as u64,
        n,
        "every line reached the upstream"
    );
    let most = stats.by_body.values().copied().max().unwrap();
    assert!(most <= 2, "a body was sent {most} times");
    assert_eq!(stats.requests, n + duplicates);
    assert!(
        stats.requests <= n + UNCOMMITTED_BOUND,
        "{} upstream calls for {n} lines (bound {UNCOMMITTED_BOUND} repeats)",
        stats.requests
    );
    // The lines counted as completed before the kill were never sent again.
    assert!(
        duplicates <= calls_at_kill - committed_seen,
        "{duplicates} repeats"
    );
}

#[tokio::test]
async fn sigkill_right_after_create_resumes_from_validating() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let mut gw = gateway(&mock.base_url()).await;
    let n: u64 = 3_000;
    let file = gw
        .upload(MODEL, "big.jsonl", chat_lines(MODEL, n as usize))
        .await
        .unwrap();
    let created = gw
        .create_batch(file["id"].as_str().unwrap(), CHAT, "24h")
        .await
        .unwrap();
    assert_eq!(created["status"], "validating");
    let id = created["id"].as_str().unwrap();
    gw.kill().await.unwrap();
    let calls_at_kill = mock.stats().requests;

    gw.restart().await.unwrap();
    let done = gw.wait_batch(id, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["total"], n);
    assert_eq!(done["request_counts"]["completed"], n);
    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n as usize);
    let stats = mock.stats();
    eprintln!(
        "early crash test: lines={n} upstream_calls_before_kill={calls_at_kill} total={}",
        stats.requests
    );
    assert!(stats.by_body.values().all(|c| *c <= 2));
    assert!(stats.requests <= n + UNCOMMITTED_BOUND.min(calls_at_kill));
}

#[tokio::test]
async fn batch_of_a_removed_deployment_pauses_and_resumes_when_it_returns() {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(100),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let entry = model_entry(
        MODEL,
        DEFAULT_MODEL,
        &mock.base_url(),
        &[("max_parallel_requests", "1")],
    );
    let with_model = config_of_entries(&[entry], LONG_LEASE);
    let mut gw = Gateway::start(&with_model).await.unwrap();
    let n: u64 = 40;
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, n as usize))
        .await
        .unwrap();
    let created = gw
        .create_batch(file["id"].as_str().unwrap(), CHAT, "24h")
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    gw.wait_batch_until(id, WAIT, |b| {
        b["request_counts"]["completed"].as_u64() >= Some(3)
    })
    .await
    .unwrap();

    // Restart with the deployment gone from the config: nothing is sent.
    gw.kill().await.unwrap();
    let config_path = gw.data_dir().parent().unwrap().join("config.yaml");
    let other = model_entry("other-model", DEFAULT_MODEL, &mock.base_url(), &[]);
    std::fs::write(&config_path, config_of_entries(&[other], LONG_LEASE)).unwrap();
    gw.restart().await.unwrap();
    let calls = mock.stats().requests;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        mock.stats().requests,
        calls,
        "lines were sent for a deployment no longer configured"
    );

    // With the deployment back, the batch picks up where it stopped.
    gw.kill().await.unwrap();
    std::fs::write(&config_path, &with_model).unwrap();
    gw.restart().await.unwrap();
    let done = gw.wait_batch(id, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["completed"], n, "{done}");
    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n as usize);
    assert!(mock.stats().by_body.values().all(|c| *c <= 2));
}

/// A gateway that was down past a batch's completion window ends the batch
/// `expired` when it comes back — never `completed` — with every line once.
#[tokio::test]
async fn a_batch_resumed_after_its_window_ends_expired() {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(200),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let entry = model_entry(
        MODEL,
        DEFAULT_MODEL,
        &mock.base_url(),
        &[("max_parallel_requests", "1")],
    );
    let extra = "batch_settings:\n  lease_seconds: 3600\n  completion_windows: [\"24h\", \"3s\"]\n  cancel_grace_seconds: 1\n";
    let mut gw = Gateway::start(&config_of_entries(&[entry], extra))
        .await
        .unwrap();
    let n = 40;
    let file = gw
        .upload(MODEL, "slow.jsonl", chat_lines(MODEL, n))
        .await
        .unwrap();
    let batch = gw
        .create_batch(file["id"].as_str().unwrap(), CHAT, "3s")
        .await
        .unwrap();
    let id = batch["id"].as_str().unwrap().to_string();
    // Let a few lines finish, then die well before the window closes.
    let running = gw
        .wait_batch_until(&id, WAIT, |b| {
            b["request_counts"]["completed"].as_u64().unwrap_or(0) >= 2
        })
        .await
        .unwrap();
    assert_eq!(running["status"], "in_progress");
    gw.kill().await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls_while_down = mock.stats().requests;
    gw.restart().await.unwrap();
    let done = gw.wait_batch(&id, WAIT).await.unwrap();
    assert_eq!(done["status"], "expired", "{done}");
    assert!(done["expired_at"].as_i64().is_some());
    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    assert!(err.iter().all(|l| l["error"]["code"] == "batch_expired"));
    // Nothing was sent after the restart: the window had passed.
    assert_eq!(mock.stats().requests, calls_while_down);
}
