//! Three gateway instances on one PostgreSQL database and one blob store
//! (the test S3 server under `cargo xtask ci`, else a shared `file://`
//! directory) share one batch chunk by chunk: each does a share; a
//! SIGKILLed instance's chunks are taken over once their lease lapses,
//! with no line lost or duplicated; a rolling restart loses nothing; a
//! deployment's `max_parallel_requests` holds for the three together.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fleet.rs"]
mod support;

use std::time::Duration;

use batchgate_tests::one_model::{self, id, CHAT, MODEL};
use batchgate_tests::{
    assert_every_id_once, chat_lines, config_of_entries, model_entry, Gateway, MockConfig,
    MockHandle, MockVllm,
};
use support::Fleet;

const WAIT: Duration = Duration::from_secs(300);
/// The deployment's `max_parallel_requests`, for the whole fleet (16 per
/// instance while all three have work).
const PARALLEL: u64 = 48;
/// `batch_settings.chunk_lines`.
const CHUNK_LINES: u64 = 500;
/// Chunks of one batch an instance runs at once (`CHUNKS_PER_BATCH` in
/// crates/engine/src/batch/supervisor.rs).
const CHUNKS_PER_BATCH: u64 = 2;

impl Fleet {
    /// Three instances with the deployment's `max_parallel_requests` at
    /// [`PARALLEL`].
    async fn of(mock: &MockHandle) -> Fleet {
        let params = [("max_parallel_requests", PARALLEL.to_string())];
        Fleet::with(mock, &params, CHUNK_LINES).await
    }

    /// With these `litellm_params` and `batch_settings.chunk_lines`.
    async fn with(mock: &MockHandle, params: &[(&str, String)], chunk_lines: u64) -> Fleet {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let entry = model_entry(
            MODEL,
            batchgate_mock_vllm::DEFAULT_MODEL,
            &mock.base_url(),
            &params,
        );
        // A short lease: a killed instance's chunks are taken over within
        // seconds.
        let extra = format!(
            "batch_settings:\n  lease_seconds: 5\n  chunk_lines: {chunk_lines}\n  shutdown_grace_seconds: 20\n"
        );
        Fleet::start(&config_of_entries(&[entry], &extra), "fleet", 3).await
    }

    /// Uploads `n` chat lines through the first instance and creates a
    /// batch over them.
    async fn batch(&self, n: usize) -> String {
        let gw = &self.gateways[0];
        let file = gw.upload(MODEL, "in.jsonl", chat_lines(MODEL, n)).await;
        let file = file.unwrap();
        let created = gw.create_batch(id(&file), CHAT, "24h").await.unwrap();
        id(&created).to_string()
    }
}

/// A counter of the instance's `/metrics`, summed over its label sets.
async fn metric(gw: &Gateway, name: &str, label: &str) -> u64 {
    let text = gw
        .http
        .get(gw.url("/metrics"))
        .bearer_auth(batchgate_tests::MASTER_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Σ over bodies of (200 answers − 1): inference the upstream did twice.
fn excess_200s(mock: &MockHandle) -> u64 {
    let stats = mock.stats();
    stats
        .succeeded_by_body
        .values()
        .map(|n| n.saturating_sub(1))
        .sum()
}

/// 20,000 lines (the figure; at 3 × 16 in flight against a 2 ms
/// upstream they take well under a minute in a debug build) spread over
/// the three instances: every one of them finishes chunks and journals
/// lines, and the results hold every line exactly once.
#[tokio::test]
async fn one_batch_is_shared_by_three_instances() {
    let mock = one_model::mock(2).await;
    let fleet = Fleet::of(&mock).await;
    let n = 20_000;
    let batch = fleet.batch(n).await;
    let done = fleet.gateways[1].wait_batch(&batch, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let (out, err) = fleet.gateways[2].results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    assert!(err.is_empty(), "{}", err[0]);
    let mut shares = Vec::new();
    for gw in &fleet.gateways {
        let chunks = metric(gw, "batchgate_batch_chunks_total", "outcome=\"done\"").await;
        let lines = metric(gw, "batchgate_lines_total", "outcome=\"completed\"").await;
        shares.push((chunks, lines));
    }
    eprintln!("chunks and lines done per instance: {shares:?}");
    let chunks: u64 = shares.iter().map(|s| s.0).sum();
    assert_eq!(chunks, n as u64 / CHUNK_LINES, "{shares:?}");
    assert!(
        shares.iter().all(|(c, l)| *c > 0 && *l > 0),
        "every instance ran a share: {shares:?}"
    );
    assert_eq!(excess_200s(&mock), 0, "no line ran twice");
}

/// One instance is SIGKILLed mid-batch; the other two take its chunks
/// over once their lease lapses and finish the batch: nothing lost or
/// duplicated, and the upstream repeats at most what the killed instance
/// had in flight or answered but not yet journaled.
#[tokio::test]
async fn a_killed_instance_s_lines_are_finished_by_the_others() {
    let mock = one_model::mock(5).await;
    let mut fleet = Fleet::of(&mock).await;
    let n = 8_000;
    let batch = fleet.batch(n).await;
    let watcher = &fleet.gateways[0];
    watcher
        .wait_batch_until(&batch, WAIT, |b| {
            b["request_counts"]["completed"].as_u64() >= Some(n as u64 / 4)
        })
        .await
        .unwrap();
    let victim = &mut fleet.gateways[1];
    let journaled_by_victim = metric(victim, "batchgate_lines_total", "completed").await;
    victim.kill().await.unwrap();
    let at_kill = mock.stats().requests;
    assert!(at_kill < n as u64, "the batch ended before the kill");

    let done = fleet.gateways[2].wait_batch(&batch, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let (out, err) = fleet.gateways[0].results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    assert!(err.is_empty(), "{}", err[0]);
    let excess = excess_200s(&mock);
    // In flight on the victim: its slots, plus results answered but not
    // yet journaled (at most its chunks' lines, two chunks at a time).
    let bound = PARALLEL + CHUNKS_PER_BATCH * CHUNK_LINES;
    eprintln!(
        "kill test: {n} lines, victim had journaled ≥{journaled_by_victim}, upstream calls at kill {at_kill}, \
         total {}, excess 200s {excess} (bound {bound})",
        mock.stats().requests
    );
    assert!(excess <= bound, "excess 200s {excess} > {bound}");
}

/// Every instance is stopped gracefully (SIGTERM) and started again, one
/// after the other, while the batch runs: it completes with every line
/// once, and no line was answered twice (each stop lets its in-flight
/// lines finish and journals them).
#[tokio::test]
async fn a_rolling_restart_loses_nothing() {
    let mock = one_model::mock(5).await;
    let mut fleet = Fleet::of(&mock).await;
    let n = 8_000;
    let batch = fleet.batch(n).await;
    for (i, step) in [1u64, 2, 3].into_iter().enumerate() {
        let target = n as u64 * step / 5;
        let watcher = &fleet.gateways[(i + 1) % 3];
        watcher
            .wait_batch_until(&batch, WAIT, |b| {
                b["request_counts"]["completed"].as_u64() >= Some(target)
            })
            .await
            .unwrap();
        let gw = &mut fleet.gateways[i];
        let status = gw.terminate().await.unwrap();
        assert!(status.success(), "instance {i} stopped with {status}");
        gw.restart().await.unwrap();
    }
    let done = fleet.gateways[0].wait_batch(&batch, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let (out, err) = fleet.gateways[1].results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    assert!(err.is_empty(), "{}", err[0]);
    assert_eq!(excess_200s(&mock), 0, "a graceful stop repeats nothing");
}

/// A fixed `max_parallel_requests` of 12 against a server that runs exactly
/// 12 at once: while the three instances share a batch, the server never
/// has a request waiting (each instance sends its share, 4, not 12), and
/// every instance still does part of the work.
#[tokio::test]
async fn max_parallel_requests_holds_for_the_whole_fleet() {
    const LIMIT: usize = 12;
    let mock = MockVllm::start(MockConfig {
        capacity: Some(LIMIT),
        latency: Duration::from_millis(50),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let params = [
        ("max_parallel_requests", LIMIT.to_string()),
        ("adaptive_concurrency", "false".to_string()),
    ];
    let fleet = Fleet::with(&mock, &params, 100).await;
    let n = 3_000;
    let batch = fleet.batch(n).await;
    // Any instance's `/fleet` lists all three working on the model, each
    // with a share of the limit.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, view) = fleet.gateways[2].get("/fleet").await.unwrap();
        assert_eq!(status, 200, "{view}");
        let working = view["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["models"] == serde_json::json!([MODEL]))
            .count();
        let ceiling = &view["deployments"][0]["concurrency"]["ceiling"];
        if working == 3 && ceiling == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done = fleet.gateways[1].wait_batch(&batch, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let load = mock.load();
    let mut lines = Vec::new();
    for gw in &fleet.gateways {
        lines.push(metric(gw, "batchgate_lines_total", "outcome=\"completed\"").await);
    }
    eprintln!("lines per instance {lines:?}, server {load:?}");
    assert_eq!(load.completed, n as u64, "{load:?}");
    assert_eq!(
        load.max_waiting, 0,
        "the fleet sent more than {LIMIT}: {load:?}"
    );
    assert!(
        lines.iter().all(|l| *l > 0),
        "every instance ran a share: {lines:?}"
    );
}
