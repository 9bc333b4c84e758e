//! Traces, in process: the real router and batch engine against mock-vllm,
//! with the OpenTelemetry layer of `batchgate_server::telemetry` exporting
//! to the SDK's in-memory exporter. Proves the HTTP, batch-phase and
//! upstream spans are exported with their attributes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use batchgate_engine::system_clock;
use batchgate_mock_vllm::{prompt_tokens_of, MockConfig, MockVllm, DEFAULT_MODEL};
use batchgate_server::telemetry::otel_layer_with;
use batchgate_tests::in_process::{InProcess, Keys};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt;

const KEY: &str = "sk-telemetry";
const PROMPTS: [&str; 2] = ["Hello there!", "How are you today, friend?"];

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// Starts the gateway in process (engine running) against `upstream`.
async fn start_gateway(upstream: &str, dir: &std::path::Path) -> InProcess {
    let yaml = format!(
        "model_list:\n- model_name: m\n  litellm_params:\n    model: hosted_vllm/{DEFAULT_MODEL}\n    api_base: {upstream}\n"
    );
    InProcess::start(&yaml, dir, system_clock(), Keys::Master(KEY), true).await
}

// One thread: the scoped subscriber below sees every task of the test.
#[tokio::test(flavor = "current_thread")]
async fn http_batch_and_upstream_spans_are_exported() {
    let exporter = InMemorySpanExporter::default();
    let (layer, provider) = otel_layer_with(exporter.clone());
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&mock.base_url(), dir.path()).await;
    let base = gateway.base.clone();
    let http = reqwest::Client::new();

    let bodies: Vec<Value> = PROMPTS
        .iter()
        .map(|p| json!({"model": "m", "messages": [{"role": "user", "content": p}]}))
        .collect();
    let jsonl: String = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({"custom_id": format!("r{i}"), "method": "POST", "url": "/v1/chat/completions", "body": b})
                .to_string()
                + "\n"
        })
        .collect();
    let form = Form::new().text("purpose", "batch").part(
        "file",
        Part::bytes(jsonl.into_bytes()).file_name("in.jsonl"),
    );
    let file: Value = http
        .post(format!("{base}/v1/files"))
        .bearer_auth(KEY)
        .header("x-litellm-model", "m")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created = http
        .post(format!("{base}/v1/batches"))
        .bearer_auth(KEY)
        .json(&json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let request_id = created.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let batch: Value = created.json().await.unwrap();
    let batch_id = batch["id"].as_str().unwrap().to_string();

    // Wait for the batch, then for its finalize span to close and export.
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        assert!(
            Instant::now() < deadline,
            "batch or its spans never finished"
        );
        let b: Value = http
            .get(format!("{base}/v1/batches/{batch_id}"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if b["status"] == "completed" {
            provider.force_flush().unwrap();
            let spans = exporter.get_finished_spans().unwrap();
            if !named(&spans, "batch.finalize").is_empty() {
                break spans;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The HTTP span of the create call carries the response's request id.
    let create = spans
        .iter()
        .find(|s| attr(s, "request_id").as_deref() == Some(request_id.as_str()))
        .expect("a span with the response's x-request-id");
    assert_eq!(create.name, "POST /v1/batches");
    assert_eq!(create.span_kind, SpanKind::Server);
    assert_eq!(attr(create, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attr(create, "url.path").as_deref(), Some("/v1/batches"));
    assert_eq!(attr(create, "http.route").as_deref(), Some("/v1/batches"));
    assert_eq!(
        attr(create, "http.response.status_code").as_deref(),
        Some("200")
    );

    // One span per phase, each naming the batch and its public model.
    for phase in ["batch.validate", "batch.execute", "batch.finalize"] {
        let found = named(&spans, phase);
        assert_eq!(found.len(), 1, "{phase}: {found:?}");
        assert_eq!(
            attr(found[0], "batch.id").as_deref(),
            Some(batch_id.as_str())
        );
        assert_eq!(attr(found[0], "gen_ai.request.model").as_deref(), Some("m"));
    }
    let outcome = |phase| attr(named(&spans, phase)[0], "batchgate.outcome");
    assert_eq!(outcome("batch.validate").as_deref(), Some("valid"));
    assert_eq!(outcome("batch.execute").as_deref(), Some("done"));
    assert_eq!(outcome("batch.finalize").as_deref(), Some("completed"));

    // One client span per upstream call, with GenAI attributes and the
    // mock's deterministic usage.
    let calls = named(&spans, &format!("chat {DEFAULT_MODEL}"));
    assert_eq!(calls.len(), PROMPTS.len(), "{spans:#?}");
    let mut seen: Vec<(String, String)> = Vec::new();
    for call in &calls {
        assert_eq!(call.span_kind, SpanKind::Client);
        assert_eq!(attr(call, "gen_ai.system").as_deref(), Some("vllm"));
        assert_eq!(attr(call, "gen_ai.operation.name").as_deref(), Some("chat"));
        assert_eq!(
            attr(call, "gen_ai.request.model").as_deref(),
            Some(DEFAULT_MODEL)
        );
        assert_eq!(
            attr(call, "gen_ai.response.model").as_deref(),
            Some(DEFAULT_MODEL)
        );
        assert_eq!(attr(call, "server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(
            attr(call, "http.response.status_code").as_deref(),
            Some("200")
        );
        assert_eq!(
            attr(call, "gen_ai.usage.output_tokens").as_deref(),
            Some("16")
        );
        assert_eq!(attr(call, "batchgate.attempt").as_deref(), Some("1"));
        assert_eq!(attr(call, "error.type"), None);
        seen.push((
            attr(call, "batchgate.line").unwrap(),
            attr(call, "gen_ai.usage.input_tokens").unwrap(),
        ));
    }
    seen.sort();
    let expected: Vec<(String, String)> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| ((i + 1).to_string(), prompt_tokens_of(b).to_string()))
        .collect();
    assert_eq!(seen, expected);

    drop(gateway);
    provider.shutdown().unwrap();
}
