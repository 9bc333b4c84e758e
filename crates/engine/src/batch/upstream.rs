//! One line against the upstream: request, retries, and the result line.

use std::future::Future;
use std::time::{Duration, Instant};

use batchgate_core::{Deployment, ErrorBody};
use batchgate_ids::{batch_request_id, request_id};
use batchgate_store::{LineResult, LineUsage};
use futures::FutureExt;
use rand::Rng;
use serde_json::{json, Map, Value};
use tracing::Instrument;

use super::limits::Slot;
use outage::{next_try, Tries};
use spans::{attempt_span, record_attempt};

mod outage;
mod spans;
#[cfg(test)]
mod tests;

/// Longest `Retry-After` honoured; a longer one is clamped to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Retry policy, from `batch_settings`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Exponential backoff with jitter: attempt 1 waits ~initial, then twice
    /// as long each time, capped, scaled by a random 50–100% so a fleet of
    /// lines that failed together does not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.initial_backoff.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let capped = exp.min(self.max_backoff);
        capped.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// What the last attempt ended with.
enum Attempt {
    Success {
        status: u16,
        request_id: String,
        body: Value,
    },
    /// An HTTP answer that is final (4xx other than 408/409/429).
    Rejected {
        status: u16,
        request_id: String,
        body: Value,
    },
    /// Worth another try; `retry_after` from the upstream when it said so.
    Retryable {
        status: Option<u16>,
        request_id: Option<String>,
        body: Option<Value>,
        message: String,
        retry_after: Option<Duration>,
    },
}

/// One input line, as it goes upstream.
#[derive(Debug)]
pub struct Line {
    pub number: u64,
    pub custom_id: String,
    pub body: Map<String, Value>,
}

/// Sends one line to the replica of `slot` (model rewritten to its served
/// name), retrying per `policy`, and turns the outcome into a journal entry,
/// returned with the slot of the replica that served it.
///
/// An outage of the replica spends no attempt (see [`super::breaker`]): the
/// line waits for a replica that is up. If `ended` resolves meanwhile (the
/// batch expired, was cancelled or stopped) the line gives up with `None`
/// and stays unfinished.
pub async fn run_line(
    http: &reqwest::Client,
    slot: Slot,
    endpoint: &str,
    line: Line,
    policy: &RetryPolicy,
    ended: impl Future<Output = ()> + Send + 'static,
) -> Option<(LineResult, Slot)> {
    let ended = ended.boxed().shared();
    let Line {
        number: line_no,
        custom_id,
        mut body,
    } = line;
    let started = Instant::now();
    // Time spent waiting on the upstream, in backoff or for a paused
    // replica: the rest of the line's time is the gateway's own overhead.
    let mut waited = Duration::ZERO;
    let mut slot = slot;
    let mut tries = Tries::default();
    let last = loop {
        let t = Instant::now();
        let outcome = attempt(
            http,
            &slot.deployment,
            endpoint,
            line_no,
            tries.sent + 1,
            &mut body,
        )
        .await;
        waited += t.elapsed();
        tries.record(&slot.breaker, &outcome);
        let retry_after = match &outcome {
            Attempt::Retryable { retry_after, .. } => *retry_after,
            Attempt::Success { .. } | Attempt::Rejected { .. } => break outcome,
        };
        let t = Instant::now();
        let next = next_try(slot, &mut tries, policy, retry_after, &ended, line_no).await;
        waited += t.elapsed();
        let (s, retry) = next?;
        slot = s;
        if !retry {
            break outcome;
        }
        metrics::counter!("batchgate_line_retries_total", "deployment" => slot.deployment.id.clone())
            .increment(1);
    };
    let result = result_line(line_no, custom_id, last);
    let overhead = started.elapsed().saturating_sub(waited);
    metrics::histogram!("batchgate_gateway_overhead_seconds", "deployment" => slot.deployment.id.clone())
        .record(overhead.as_secs_f64());
    Some((result, slot))
}

/// One request to `deployment`, with its span and metrics.
async fn attempt(
    http: &reqwest::Client,
    deployment: &Deployment,
    endpoint: &str,
    line_no: u64,
    n: u32,
    body: &mut Map<String, Value>,
) -> Attempt {
    // Per attempt: a line that moved off a paused replica may land on one
    // that serves the model under another name.
    body.insert(
        "model".into(),
        Value::String(deployment.served_model.clone()),
    );
    let path = endpoint.strip_prefix("/v1").unwrap_or(endpoint);
    let url = deployment.url(path);
    let dep = deployment.id.clone();
    let t = Instant::now();
    metrics::gauge!("batchgate_upstream_in_flight", "deployment" => dep.clone()).increment(1.0);
    let span = attempt_span(deployment, endpoint, line_no, n);
    let outcome = send(http, deployment, &url, body)
        .instrument(span.clone())
        .await;
    record_attempt(&span, &outcome);
    metrics::gauge!("batchgate_upstream_in_flight", "deployment" => dep.clone()).decrement(1.0);
    metrics::histogram!("batchgate_upstream_request_duration_seconds", "deployment" => dep.clone())
        .record(t.elapsed().as_secs_f64());
    if let Some(kind) = outcome.error_kind() {
        metrics::counter!("batchgate_upstream_errors_total", "deployment" => dep, "kind" => kind)
            .increment(1);
    }
    outcome
}

impl Attempt {
    /// Whether the replica failed to answer at all (connection refused or
    /// reset, timeout) or answered 5xx: what an outage looks like. Any
    /// other answer shows the replica up, whatever it says of the line.
    fn is_outage_type(&self) -> bool {
        match self {
            Attempt::Success { .. } | Attempt::Rejected { .. } => false,
            Attempt::Retryable { status, .. } => status.is_none_or(|s| s >= 500),
        }
    }

    /// The error class of an attempt, for metrics.
    fn error_kind(&self) -> Option<&'static str> {
        match self {
            Attempt::Success { .. } => None,
            Attempt::Rejected { .. } => Some("4xx"),
            Attempt::Retryable {
                status: Some(429), ..
            } => Some("429"),
            Attempt::Retryable {
                status: Some(s), ..
            } if *s >= 500 => Some("5xx"),
            Attempt::Retryable {
                status: Some(_), ..
            } => Some("retryable_status"),
            Attempt::Retryable { status: None, .. } => Some("connection"),
        }
    }
}

async fn send(
    http: &reqwest::Client,
    deployment: &Deployment,
    url: &str,
    body: &Map<String, Value>,
) -> Attempt {
    let mut req = http.post(url).timeout(deployment.timeout).json(body);
    if let Some(key) = &deployment.api_key {
        req = req.bearer_auth(key);
    }
    let response = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let message = if e.is_timeout() {
                format!("upstream did not answer within {:?}", deployment.timeout)
            } else {
                format!("upstream unreachable: {e}")
            };
            return Attempt::Retryable {
                status: None,
                request_id: None,
                body: None,
                message,
                retry_after: None,
            };
        }
    };
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(request_id);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Attempt::Retryable {
                status: Some(status),
                request_id: Some(request_id),
                body: None,
                message: format!("upstream response was cut off: {e}"),
                retry_after,
            }
        }
    };
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let retryable = status == 408 || status == 409 || status == 429 || status >= 500;
    match (status, parsed) {
        (200..=299, Some(body)) => Attempt::Success {
            status,
            request_id,
            body,
        },
        (200..=299, None) => Attempt::Retryable {
            status: Some(status),
            request_id: Some(request_id),
            body: None,
            message: "upstream answered with a body that is not JSON".into(),
            retry_after: None,
        },
        (_, parsed) => {
            let body = error_body(status, parsed.as_ref(), &bytes);
            if retryable {
                let message = format!("upstream answered {status}");
                Attempt::Retryable {
                    status: Some(status),
                    request_id: Some(request_id),
                    body: Some(body),
                    message,
                    retry_after,
                }
            } else {
                Attempt::Rejected {
                    status,
                    request_id,
                    body,
                }
            }
        }
    }
}

/// The upstream's error as an OpenAI envelope (vLLM's integer `code`
/// becomes a string; a non-JSON body becomes the message).
fn error_body(status: u16, parsed: Option<&Value>, raw: &[u8]) -> Value {
    let body = parsed
        .and_then(ErrorBody::from_upstream)
        .unwrap_or_else(|| ErrorBody {
            message: String::from_utf8_lossy(raw).chars().take(2000).collect(),
            kind: "upstream_error".into(),
            param: None,
            code: Some(status.to_string()),
        });
    json!({ "error": body })
}

fn usage_of(body: &Value) -> LineUsage {
    let u = &body["usage"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let input = if u["prompt_tokens"].is_u64() {
        n(&u["prompt_tokens"])
    } else {
        n(&u["total_tokens"])
    };
    LineUsage {
        input_tokens: input,
        cached_tokens: n(&u["prompt_tokens_details"]["cached_tokens"]),
        output_tokens: n(&u["completion_tokens"]),
        reasoning_tokens: n(&u["completion_tokens_details"]["reasoning_tokens"]),
    }
}

/// The output-file line of a successful request, as the engine journals it
/// (public for the serialization benchmark).
pub fn success_line(
    line_no: u64,
    custom_id: String,
    status: u16,
    request_id: String,
    body: Value,
) -> LineResult {
    result_line(
        line_no,
        custom_id,
        Attempt::Success {
            status,
            request_id,
            body,
        },
    )
}

fn result_line(line_no: u64, custom_id: String, last: Attempt) -> LineResult {
    let id = batch_request_id();
    let (ok, value, usage) = match last {
        Attempt::Success {
            status,
            request_id,
            body,
        } => {
            let usage = usage_of(&body);
            let v = json!({"id": id, "custom_id": custom_id, "response": {"status_code": status, "request_id": request_id, "body": body}, "error": null});
            (true, v, Some(usage))
        }
        Attempt::Rejected {
            status,
            request_id,
            body,
        }
        | Attempt::Retryable {
            status: Some(status),
            request_id: Some(request_id),
            body: Some(body),
            ..
        } => {
            let v = json!({"id": id, "custom_id": custom_id, "response": {"status_code": status, "request_id": request_id, "body": body}, "error": null});
            (false, v, None)
        }
        Attempt::Retryable {
            message, status, ..
        } => {
            let code = if status.is_some() {
                "upstream_error"
            } else {
                "upstream_unreachable"
            };
            let v = json!({"id": id, "custom_id": custom_id, "response": null, "error": {"code": code, "message": message}});
            (false, v, None)
        }
    };
    LineResult {
        line_no,
        custom_id,
        ok,
        line: value.to_string(),
        usage,
        charge: None,
    }
}

/// The error-file line of a request that never ran because the batch
/// expired.
pub fn expired_line(line_no: u64, custom_id: &str) -> LineResult {
    not_run_line(
        line_no,
        custom_id,
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    )
}

/// The error-file line of a request that never ran because its key or
/// team ran out of budget.
pub fn budget_line(line_no: u64, custom_id: &str) -> LineResult {
    not_run_line(
        line_no,
        custom_id,
        "budget_exceeded",
        "This request was not executed: the budget of its key or team was exceeded.",
    )
}

fn not_run_line(line_no: u64, custom_id: &str, code: &str, message: &str) -> LineResult {
    let v = json!({"id": batch_request_id(), "custom_id": custom_id, "response": null,
        "error": {"code": code, "message": message}});
    LineResult {
        line_no,
        custom_id: custom_id.to_string(),
        ok: false,
        line: v.to_string(),
        usage: None,
        charge: None,
    }
}
