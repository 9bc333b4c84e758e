//! `GET /metrics`: the series vLLM's own Prometheus logger exports
//! (`vllm/v1/metrics/loggers.py`), with its labels `model_name` (the first
//! served name) and `engine` (`"0"`: one engine core), plus the mock's own
//! request counter.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Escapes a Prometheus label value.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One `# HELP`/`# TYPE` block with one sample.
fn series(out: &mut String, name: &str, kind: &str, help: &str, labels: &str, value: &str) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{labels} {value}\n"
    );
}

pub(crate) async fn render(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.stats();
    let model = label(state.models.first().map(String::as_str).unwrap_or(""));
    let labels = format!("{{model_name=\"{model}\",engine=\"0\"}}");
    // Without a capacity every request runs at once: "running" is every
    // request being answered, and nothing waits.
    let (running, waiting) = match state.scheduler.counts() {
        (r, w) if state.scheduler.capacity().is_some() => (r as u64, w as u64),
        _ => (state.in_flight(), 0),
    };
    let mut out = String::new();
    let gauges = [
        (
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            running.to_string(),
        ),
        (
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            waiting.to_string(),
        ),
        (
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            state.scheduler.kv_cache_usage().to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        series(&mut out, name, "gauge", help, &labels, &value);
    }
    let counters = [
        (
            "vllm:request_success_total",
            "Count of successfully processed requests.",
            stats.succeeded,
        ),
        (
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            stats.prompt_tokens,
        ),
        (
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            stats.completion_tokens,
        ),
    ];
    for (name, help, value) in counters {
        series(&mut out, name, "counter", help, &labels, &value.to_string());
    }
    series(
        &mut out,
        "mock_vllm_requests_total",
        "counter",
        "Inference requests received by mock-vllm.",
        "",
        &stats.requests.to_string(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
