//! Metrics and health through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_tests::{chat_lines, config, Gateway, MockConfig, MockVllm, MASTER_KEY};

/// The value of the first sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_traffic_lines_tokens_and_batches() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&config(&[("m", &mock.base_url())], ""))
        .await
        .unwrap();
    let lines = chat_lines("m", 7);
    let size = lines.len() as f64;
    let file = gw.upload("m", "in.jsonl", lines).await.unwrap();
    let batch = gw
        .create_batch(file["id"].as_str().unwrap(), "/v1/chat/completions", "24h")
        .await
        .unwrap();
    let done = gw
        .wait_batch(batch["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    let out = gw
        .content(done["output_file_id"].as_str().unwrap())
        .await
        .unwrap();

    // No key needed, Prometheus text format.
    let r = gw.http.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(
        sample(
            &text,
            "batchgate_http_requests_total{route=\"/v1/files\",method=\"POST\",status=\"200\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "batchgate_lines_total{model=\"m\",outcome=\"completed\"}"
        ),
        Some(7.0)
    );
    assert_eq!(
        sample(&text, "batchgate_batches{status=\"completed\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "batchgate_queue_depth_lines"), Some(0.0));
    assert_eq!(sample(&text, "batchgate_bytes_uploaded_total"), Some(size));
    assert_eq!(
        sample(&text, "batchgate_bytes_downloaded_total"),
        Some(out.len() as f64)
    );
    let words: f64 = (1..=7)
        .map(|i| format!("line {i} says hello").split_whitespace().count() as f64)
        .sum();
    assert_eq!(
        sample(&text, "batchgate_tokens_total{model=\"m\",kind=\"input\"}"),
        Some(words)
    );
    assert_eq!(
        sample(&text, "batchgate_tokens_total{model=\"m\",kind=\"output\"}"),
        Some(7.0 * 16.0)
    );
    for series in [
        "batchgate_upstream_request_duration_seconds_count",
        "batchgate_gateway_overhead_seconds_count",
        "batchgate_http_request_duration_seconds_bucket",
        "batchgate_upstream_in_flight",
    ] {
        assert!(text.contains(series), "missing {series}");
    }
    assert_eq!(mock.stats().requests, 7);
}

#[tokio::test]
async fn health_reports_each_deployment() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let gw = Gateway::start(&config(&[("up", &mock.base_url()), ("down", &closed)], ""))
        .await
        .unwrap();
    for path in ["/health/liveliness", "/health/readiness"] {
        assert_eq!(
            gw.http.get(gw.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    assert_eq!(
        gw.http
            .get(gw.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = gw
        .http
        .get(gw.url("/health"))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["healthy_count"], 1);
    assert_eq!(body["unhealthy_count"], 1);
    assert_eq!(body["healthy_endpoints"][0]["model"], "up");
    assert_eq!(body["unhealthy_endpoints"][0]["model"], "down");
    assert!(body["unhealthy_endpoints"][0]["error"].is_string());
}

/// Starts `cmd` with stdout and stderr piped, waits for its `listening on`
/// line, stops it and returns what it wrote to stderr.
async fn stderr_of_a_short_run(mut cmd: tokio::process::Command) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if line.contains("listening on") {
                return true;
            }
        }
        false
    });
    assert!(listening.await.unwrap(), "never listened");
    child.kill().await.unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    stderr
}

/// Logs piped to a file or a collector carry no ANSI escape codes, from the
/// gateway and from the mock alike.
#[tokio::test]
async fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config(&[("m", "http://127.0.0.1:9")], "")).unwrap();
    let mut gateway = tokio::process::Command::new(batchgate_tests::binary("batchgate"));
    gateway
        .arg("--config")
        .arg(&config_path)
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR");
    let mut mock = tokio::process::Command::new(batchgate_tests::binary("mock-vllm"));
    mock.args(["--port", "0"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR");
    for (name, cmd) in [("batchgate", gateway), ("mock-vllm", mock)] {
        let stderr = stderr_of_a_short_run(cmd).await;
        assert!(stderr.contains("INFO"), "{name} logged nothing: {stderr}");
        assert!(
            !stderr.contains('\u{1b}'),
            "{name} coloured its log: {stderr:?}"
        );
    }
}
