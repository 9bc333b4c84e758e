//! Latency, fault injection and counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use batchgate_mock_vllm::{
    body_digest, Faults, MockConfig, MockHandle, MockStats, MockVllm, DEFAULT_MODEL,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn chat_body(text: &str) -> Value {
    json!({"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": text}]})
}

async fn start_with(faults: Faults) -> MockHandle {
    let cfg = MockConfig {
        faults,
        seed: Some(42),
        ..MockConfig::default()
    };
    MockVllm::start(cfg).await.expect("start mock")
}

fn chat_url(mock: &MockHandle) -> String {
    format!("{}/v1/chat/completions", mock.base_url())
}

#[tokio::test]
async fn fail_first_n_fails_each_body_n_times() {
    let mock = start_with(Faults {
        fail_first_n: 2,
        ..Faults::default()
    })
    .await;
    let client = reqwest::Client::new();
    let body = chat_body("retry me");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = client
            .post(chat_url(&mock))
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status());
        if resp.status() == StatusCode::INTERNAL_SERVER_ERROR {
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error"]["code"], 500);
            assert_eq!(v["error"]["type"], "InternalServerError");
        }
    }
    assert_eq!(
        statuses,
        vec![
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::OK
        ]
    );
    // A different body starts its own count.
    let other = client
        .post(chat_url(&mock))
        .json(&chat_body("another"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let stats = mock.stats();
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.succeeded, 1);
    assert_eq!(stats.attempts_for(&body_digest(&body)), 3);
    assert_eq!(stats.attempts_for(&body_digest(&chat_body("another"))), 1);
    assert_eq!(stats.successes_for(&body_digest(&body)), 1);
    assert_eq!(stats.successes_for(&body_digest(&chat_body("another"))), 0);
    mock.shutdown().await;
}

#[tokio::test]
async fn rate_limit_has_retry_after() {
    let mock = start_with(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 7,
        ..Faults::default()
    })
    .await;
    let resp = reqwest::Client::new()
        .post(chat_url(&mock))
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 429);
    mock.shutdown().await;
}

#[tokio::test]
async fn drop_closes_the_connection_without_response() {
    let mock = start_with(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..2 {
        let err = client
            .post(chat_url(&mock))
            .json(&chat_body("hi"))
            .send()
            .await
            .expect_err("a dropped connection must not yield a response");
        assert!(!err.is_timeout(), "{err:?}");
        assert!(err.status().is_none(), "{err:?}");
    }
    // Non-inference routes are unaffected.
    let health = client
        .get(format!("{}/health", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(mock.stats().requests, 2);
    mock.shutdown().await;
}

#[tokio::test]
async fn hang_never_answers() {
    let mock = start_with(Faults {
        hang_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .post(chat_url(&mock))
        .json(&chat_body("hi"))
        .send()
        .await
        .expect_err("a hung request must time out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Shutdown still completes (hung requests are aborted after the grace period).
    tokio::time::timeout(Duration::from_secs(10), mock.shutdown())
        .await
        .expect("shutdown with a hung request");
}

#[tokio::test]
async fn latency_is_applied() {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(250),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    // Warm the connection so only the request is timed.
    client
        .get(format!("{}/health", mock.base_url()))
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    let resp = client
        .post(chat_url(&mock))
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // Health checks are not delayed.
    let started = Instant::now();
    client
        .get(format!("{}/health", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(250));
    mock.shutdown().await;
}

#[tokio::test]
async fn random_faults_follow_rates() {
    let mock = start_with(Faults {
        fail_rate: 0.5,
        ..Faults::default()
    })
    .await;
    let client = reqwest::Client::new();
    let mut failed = 0;
    for i in 0..100 {
        let resp = client
            .post(chat_url(&mock))
            .json(&chat_body(&format!("n{i}")))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::INTERNAL_SERVER_ERROR {
            failed += 1;
        } else {
            assert_eq!(resp.status(), StatusCode::OK);
        }
    }
    assert!((25..=75).contains(&failed), "failed = {failed}");
    assert_eq!(mock.stats().succeeded, 100 - failed);
    mock.shutdown().await;
}

#[tokio::test]
async fn stats_over_http_reset_and_runtime_faults() {
    let mock = start_with(Faults::default()).await;
    let client = reqwest::Client::new();
    let base = mock.base_url();
    let body = chat_body("count me");
    for _ in 0..2 {
        client
            .post(chat_url(&mock))
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    let emb = json!({"model": DEFAULT_MODEL, "input": "x"});
    client
        .post(format!("{base}/v1/embeddings"))
        .json(&emb)
        .send()
        .await
        .unwrap();

    let over_http: MockStats = client
        .get(format!("{base}/mock/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, mock.stats());
    assert_eq!(over_http.requests, 3);
    assert_eq!(over_http.succeeded, 3);
    assert_eq!(over_http.endpoint("/v1/chat/completions"), 2);
    assert_eq!(over_http.endpoint("/v1/embeddings"), 1);
    assert_eq!(over_http.attempts_for(&body_digest(&body)), 2);
    assert_eq!(over_http.successes_for(&body_digest(&body)), 2);
    assert_eq!(over_http.prompt_tokens, 2 * 2 + 1);
    assert_eq!(over_http.completion_tokens, 2 * 16);

    let resp = client
        .post(format!("{base}/mock/reset"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(mock.stats(), MockStats::default());

    // Runtime fault change over HTTP: a partial patch keeps other fields.
    let v: Value = client
        .post(format!("{base}/mock/faults"))
        .json(&json!({"rate_limit_rate": 1.0, "retry_after_secs": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["rate_limit_rate"], 1.0);
    assert_eq!(v["fail_rate"], 0.0);
    assert_eq!(mock.faults().retry_after_secs, 3);
    let resp = client
        .post(chat_url(&mock))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "3");
    let bad = client
        .post(format!("{base}/mock/faults"))
        .json(&json!({"fail_rate": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // And through the handle.
    mock.set_faults(Faults::default());
    let resp = client
        .post(chat_url(&mock))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    mock.reset();
    assert_eq!(mock.stats().requests, 0);
    mock.shutdown().await;
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let mock = start_with(Faults::default()).await;
    let url = format!("{}/health", mock.base_url());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert!(client.get(&url).send().await.is_ok());
    drop(mock);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if client.get(&url).send().await.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server still answering after drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
