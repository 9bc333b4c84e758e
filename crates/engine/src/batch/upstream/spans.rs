//! Tracing spans of upstream calls, after OpenTelemetry's GenAI semantic
//! conventions (`gen_ai.*`), one per attempt.

use batchgate_core::Deployment;
use serde_json::Value;
use tracing::field::Empty;
use tracing::Span;

use super::Attempt;
use batchgate_core::TokenUsage;

/// The client span of one attempt, named `{operation} {served model}` as
/// in OpenTelemetry's GenAI conventions. `DEBUG`, so it costs nothing
/// unless traces are exported (or debug logs are on).
pub(super) fn attempt_span(
    deployment: &Deployment,
    system: &str,
    endpoint: &str,
    line_no: u64,
    attempt: u32,
) -> Span {
    let operation = operation_of(endpoint);
    let (address, port) = host_port(&deployment.api_base);
    tracing::debug_span!(
        "upstream_call",
        otel.name = format_args!("{operation} {}", deployment.served_model),
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = operation,
        gen_ai.system = system,
        gen_ai.request.model = deployment.served_model.as_str(),
        server.address = address,
        server.port = port,
        http.response.status_code = Empty,
        gen_ai.response.id = Empty,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        error.type = Empty,
        batchgate.deployment = deployment.id.as_str(),
        batchgate.line = line_no,
        batchgate.attempt = attempt,
    )
}

/// What the attempt came back with, on its span.
pub(super) fn record_attempt(
    span: &Span,
    outcome: &Attempt,
    usage_of: impl Fn(&Value) -> TokenUsage,
) {
    if span.is_disabled() {
        return;
    }
    let status = match outcome {
        Attempt::Success { status, .. } | Attempt::Rejected { status, .. } => Some(*status),
        Attempt::Retryable { status, .. } => *status,
    };
    if let Some(status) = status {
        span.record("http.response.status_code", status);
    }
    match outcome {
        Attempt::Success { body, .. } => {
            if let Some(id) = body["id"].as_str() {
                span.record("gen_ai.response.id", id);
            }
            if let Some(model) = body["model"].as_str() {
                span.record("gen_ai.response.model", model);
            }
            if body.get("usage").is_some_and(Value::is_object) {
                let usage = usage_of(body);
                span.record("gen_ai.usage.input_tokens", usage.input_tokens);
                span.record("gen_ai.usage.output_tokens", usage.output_tokens);
            }
        }
        failed => {
            span.record("otel.status_code", "error");
            match status {
                Some(200..=299) => span.record("error.type", "invalid_response"),
                Some(s) => span.record("error.type", s.to_string().as_str()),
                None => span.record("error.type", failed.error_kind().unwrap_or("connection")),
            };
        }
    }
}

/// `gen_ai.operation.name` of an endpoint.
fn operation_of(endpoint: &str) -> &str {
    match endpoint.strip_prefix("/v1").unwrap_or(endpoint) {
        "/chat/completions" => "chat",
        "/completions" => "text_completion",
        "/embeddings" => "embeddings",
        "/score" => "score",
        "/rerank" => "rerank",
        other => other.trim_start_matches('/'),
    }
}

/// Host and port of a base URL such as `http://[::1]:8000/x`, without
/// parsing it into a URL.
fn host_port(base: &str) -> (&str, Option<u16>) {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p.parse().ok()),
        _ => (authority, None),
    };
    (host.trim_start_matches('[').trim_end_matches(']'), port)
}

#[cfg(test)]
mod tests {
    use super::{host_port, operation_of};

    #[test]
    fn operations_and_hosts_for_spans() {
        assert_eq!(operation_of("/v1/chat/completions"), "chat");
        assert_eq!(operation_of("/v1/completions"), "text_completion");
        assert_eq!(operation_of("/v1/embeddings"), "embeddings");
        assert_eq!(operation_of("/v1/rerank"), "rerank");
        assert_eq!(
            host_port("http://127.0.0.1:8000"),
            ("127.0.0.1", Some(8000))
        );
        assert_eq!(
            host_port("https://gpu.internal/base"),
            ("gpu.internal", None)
        );
        assert_eq!(host_port("http://[::1]:9000/v"), ("::1", Some(9000)));
        assert_eq!(host_port("http://u:p@h:1"), ("h", Some(1)));
    }
}
