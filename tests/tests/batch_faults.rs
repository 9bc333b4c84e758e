//! Upstream faults during a batch: 500s, 429s with `Retry-After`, dropped
//! connections and hangs are retried until every line has its answer;
//! permanent 4xx answers and exhausted retries end up in the error file,
//! each line exactly once. An upstream that stops answering pauses the
//! batch: no line fails for it, and the batch expires if it never returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_mock_vllm::DEFAULT_MODEL as DEFAULT_SERVED;
use batchgate_tests::{
    assert_every_id_once, chat_lines, config_of_entries, model_entry, Faults, Gateway, MockConfig,
    MockHandle, MockVllm,
};
use serde_json::Value;

const MODEL: &str = "my-vllm-model";
const CHAT: &str = "/v1/chat/completions";
const WAIT: Duration = Duration::from_secs(120);

/// Fast retries; enough attempts that a 30% fault rate cannot plausibly
/// fail a line every time (0.3^12 per line).
fn settings(max_attempts: u32) -> String {
    format!("batch_settings:\n  initial_backoff_ms: 10\n  max_backoff_ms: 100\n  max_attempts: {max_attempts}\n")
}

async fn faulty_mock(faults: Faults) -> MockHandle {
    MockVllm::start(MockConfig {
        faults,
        seed: Some(7),
        latency: Duration::from_millis(2),
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

async fn gateway(
    served: &str,
    api_base: &str,
    params: &[(&str, &str)],
    max_attempts: u32,
) -> Gateway {
    let entry = model_entry(MODEL, served, api_base, params);
    Gateway::start(&config_of_entries(&[entry], &settings(max_attempts)))
        .await
        .unwrap()
}

/// Runs an `n`-line chat batch to its end; returns the batch and its output
/// and error lines, having checked each custom id appears exactly once.
async fn run(gw: &Gateway, n: usize) -> (Value, Vec<Value>, Vec<Value>) {
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, n))
        .await
        .unwrap();
    let created = gw
        .create_batch(file["id"].as_str().unwrap(), CHAT, "24h")
        .await
        .unwrap();
    let done = gw
        .wait_batch(created["id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    assert_eq!(done["request_counts"]["total"], n);
    assert_eq!(
        done["request_counts"]["completed"].as_u64().unwrap(),
        out.len() as u64
    );
    assert_eq!(
        done["request_counts"]["failed"].as_u64().unwrap(),
        err.len() as u64
    );
    (done, out, err)
}

fn assert_all_ok(out: &[Value], err: &[Value], n: usize) {
    assert!(
        err.is_empty(),
        "{} lines failed, e.g. {}",
        err.len(),
        err[0]
    );
    assert_eq!(out.len(), n);
    for line in out {
        assert_eq!(line["response"]["status_code"], 200, "{line}");
    }
}

#[tokio::test]
async fn server_errors_are_retried_until_every_line_succeeds() {
    let mock = faulty_mock(Faults {
        fail_rate: 0.3,
        ..Faults::default()
    })
    .await;
    let gw = gateway(DEFAULT_SERVED, &mock.base_url(), &[], 12).await;
    let n = 300;
    let (done, out, err) = run(&gw, n).await;
    assert_all_ok(&out, &err, n);
    let stats = mock.stats();
    assert!(
        stats.requests > n as u64,
        "no 500 was injected: {}",
        stats.requests
    );
    assert_eq!(stats.succeeded, n as u64, "a line succeeded twice");
    // Usage counts each line once, not each attempt.
    assert_eq!(done["usage"]["input_tokens"], 4 * n);
    assert_eq!(done["usage"]["output_tokens"], 16 * n);
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_retry_after_delay() {
    let mock = faulty_mock(Faults {
        rate_limit_rate: 0.3,
        retry_after_secs: 1,
        ..Faults::default()
    })
    .await;
    let gw = gateway(DEFAULT_SERVED, &mock.base_url(), &[], 12).await;
    let n = 100;
    let (_, out, err) = run(&gw, n).await;
    assert_all_ok(&out, &err, n);
    let stats = mock.stats();
    assert!(
        stats.requests > n as u64,
        "no 429 was injected: {}",
        stats.requests
    );
    assert_eq!(stats.succeeded, n as u64);
}

#[tokio::test]
async fn dropped_connections_lose_no_line() {
    let mock = faulty_mock(Faults {
        drop_rate: 0.2,
        ..Faults::default()
    })
    .await;
    let gw = gateway(DEFAULT_SERVED, &mock.base_url(), &[], 12).await;
    let n = 200;
    let (_, out, err) = run(&gw, n).await;
    assert_all_ok(&out, &err, n);
    assert!(mock.stats().requests > n as u64);
}

#[tokio::test]
async fn hung_requests_time_out_and_are_retried() {
    let mock = faulty_mock(Faults {
        hang_rate: 0.1,
        ..Faults::default()
    })
    .await;
    let gw = gateway(DEFAULT_SERVED, &mock.base_url(), &[("timeout", "1")], 12).await;
    let n = 100;
    let (_, out, err) = run(&gw, n).await;
    assert_all_ok(&out, &err, n);
    let stats = mock.stats();
    assert!(
        stats.requests > n as u64,
        "no hang was injected: {}",
        stats.requests
    );
    assert_eq!(stats.succeeded, n as u64);
}

#[tokio::test]
async fn permanent_client_errors_go_to_the_error_file_without_retry() {
    let mock = faulty_mock(Faults::default()).await;
    // The deployment names a model this upstream does not serve: vLLM's 404.
    let gw = gateway("no-such-model", &mock.base_url(), &[], 8).await;
    let n = 20;
    let (done, out, err) = run(&gw, n).await;
    assert!(out.is_empty() && done["output_file_id"].is_null(), "{done}");
    assert_eq!(err.len(), n);
    for line in &err {
        assert!(line["error"].is_null(), "{line}");
        let response = &line["response"];
        assert_eq!(response["status_code"], 404, "{line}");
        assert!(response["request_id"].is_string(), "{line}");
        let e = &response["body"]["error"];
        assert_eq!(
            e["code"], "404",
            "vLLM's integer code becomes a string: {line}"
        );
        assert_eq!(e["type"], "NotFoundError", "{line}");
        assert!(
            e["message"].as_str().unwrap().contains("no-such-model"),
            "{line}"
        );
    }
    assert_eq!(mock.stats().requests, n as u64, "a 404 must not be retried");
}

#[tokio::test]
async fn exhausted_retries_report_the_last_server_error() {
    let mock = faulty_mock(Faults {
        fail_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let max_attempts = 3;
    let gw = gateway(DEFAULT_SERVED, &mock.base_url(), &[], max_attempts).await;
    let n = 10;
    let (_, out, err) = run(&gw, n).await;
    assert!(out.is_empty());
    for line in &err {
        assert_eq!(line["response"]["status_code"], 500, "{line}");
        let e = &line["response"]["body"]["error"];
        assert!(e["message"].is_string(), "{line}");
        assert!(e["code"].is_string() || e["code"].is_null(), "{line}");
    }
    assert_eq!(mock.stats().requests, n as u64 * u64::from(max_attempts));
}

/// An upstream that never answers pauses the batch rather than failing its
/// lines; the batch expires at the end of its window as OpenAI's do, every
/// line `batch_expired`. The grace period for in-flight lines is an hour:
/// lines waiting for the upstream must give up at once, or the batch would
/// not end within the test's bound.
#[tokio::test]
async fn unreachable_upstream_pauses_the_batch_until_it_expires() {
    // A port nobody listens on: connections are refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let entry = model_entry(
        MODEL,
        DEFAULT_SERVED,
        &format!("http://127.0.0.1:{closed}"),
        &[],
    );
    let extra = format!(
        "{}  completion_windows: [\"24h\", \"3s\"]\n  cancel_grace_seconds: 3600\n",
        settings(2)
    );
    let gw = Gateway::start(&config_of_entries(&[entry], &extra))
        .await
        .unwrap();
    let n = 5;
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, n))
        .await
        .unwrap();
    let created = gw
        .create_batch(file["id"].as_str().unwrap(), CHAT, "3s")
        .await
        .unwrap();
    let done = gw
        .wait_batch(created["id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(done["status"], "expired", "{done}");
    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    assert!(out.is_empty());
    for line in &err {
        assert!(line["response"].is_null(), "{line}");
        assert_eq!(line["error"]["code"], "batch_expired", "{line}");
        assert!(
            line["id"].as_str().unwrap().starts_with("batch_req_"),
            "{line}"
        );
    }
}

/// An upstream restart mid-batch pauses the batch instead of failing the
/// lines that would have been sent meanwhile: with two attempts per line and
/// millisecond backoff, every line still ends in the output file, and
/// `/health` reports the deployment paused while it is down.
#[tokio::test]
async fn an_upstream_outage_pauses_the_batch_instead_of_failing_lines() {
    let cfg = MockConfig {
        latency: Duration::from_millis(20),
        ..MockConfig::default()
    };
    let mock = MockVllm::start(cfg.clone()).await.unwrap();
    let addr = mock.addr();
    let params = [("max_parallel_requests", "4")];
    let gw = gateway(DEFAULT_SERVED, &mock.base_url(), &params, 2).await;
    let n = 300;
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, n))
        .await
        .unwrap();
    let created = gw
        .create_batch(file["id"].as_str().unwrap(), CHAT, "24h")
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    gw.wait_batch_until(id, WAIT, |b| {
        b["request_counts"]["completed"].as_u64().unwrap_or(0) >= 20
    })
    .await
    .unwrap();
    mock.shutdown().await;
    // Down for a while after the engine noticed, so that lines with
    // millisecond backoff would have burnt their attempts many times over.
    wait_until_paused(&gw).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mock = MockVllm::start_on(cfg, addr).await.unwrap();
    let done = gw.wait_batch(id, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    assert_all_ok(&out, &err, n);
    assert!(
        mock.stats().succeeded > 0,
        "the batch ended before the outage"
    );
    let (_, health) = gw.get("/health").await.unwrap();
    assert_eq!(health["unhealthy_count"], 0, "resumed: {health}");
}

/// Polls `/health` until it reports a paused deployment.
async fn wait_until_paused(gw: &Gateway) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, health) = gw.get("/health").await.unwrap();
        let paused = health["unhealthy_endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| {
                e["error"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("paused: upstream unreachable since"))
            });
        if paused {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deployment was never reported paused: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
