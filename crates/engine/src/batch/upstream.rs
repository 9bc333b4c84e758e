//! One line against the upstream: request, retries, and the result line.

use std::future::Future;
use std::time::{Duration, Instant};

use batchgate_core::{ErrorBody, Reply, TokenUsage};
use batchgate_ids::{batch_request_id, request_id as request_id_fresh};
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
        let outcome = attempt(&slot, endpoint, line_no, tries.sent + 1, &mut body).await;
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
    let usage = |body: &Value| slot.upstream.usage(endpoint, body);
    let result = result_line(line_no, custom_id, last, usage);
    let overhead = started.elapsed().saturating_sub(waited);
    metrics::histogram!("batchgate_gateway_overhead_seconds", "deployment" => slot.deployment.id.clone())
        .record(overhead.as_secs_f64());
    Some((result, slot))
}

/// One request to the slot's replica, with its span and metrics.
async fn attempt(
    slot: &Slot,
    endpoint: &str,
    line_no: u64,
    n: u32,
    body: &mut Map<String, Value>,
) -> Attempt {
    let deployment = &slot.deployment;
    // Per attempt: a line that moved off a paused replica may land on one
    // that serves the model under another name.
    body.insert(
        "model".into(),
        Value::String(deployment.served_model.clone()),
    );
    let dep = deployment.id.clone();
    let t = Instant::now();
    metrics::gauge!("batchgate_upstream_in_flight", "deployment" => dep.clone()).increment(1.0);
    let span = attempt_span(deployment, slot.upstream.system(), endpoint, line_no, n);
    let reply = slot
        .upstream
        .send(endpoint, body)
        .instrument(span.clone())
        .await;
    let outcome = classify(reply);
    record_attempt(&span, &outcome, |b: &Value| {
        slot.upstream.usage(endpoint, b)
    });
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

/// What a reply means for the line: success, a final refusal, or worth
/// another try (no answer, 408/409/429, 5xx, a cut-off or non-JSON 2xx).
fn classify(reply: Reply) -> Attempt {
    let (status, request_id, retry_after, bytes) = match reply {
        Reply::NoAnswer { message } => {
            return Attempt::Retryable {
                status: None,
                request_id: None,
                body: None,
                message,
                retry_after: None,
            }
        }
        Reply::Answered {
            status,
            request_id,
            retry_after,
            body,
        } => (
            status,
            request_id.unwrap_or_else(request_id_fresh),
            retry_after,
            body,
        ),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(message) => {
            return Attempt::Retryable {
                status: Some(status),
                request_id: Some(request_id),
                body: None,
                message,
                retry_after,
            }
        }
    };
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let retryable = retryable_status(status);
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

/// Whether an HTTP status says "try again" (408, 409, 429, 5xx) rather than
/// "this request is wrong": what the engine retries, and what a retry of
/// failed lines sends again by default.
pub(super) fn retryable_status(status: u16) -> bool {
    status == 408 || status == 409 || status == 429 || status >= 500
}

/// The upstream's error as an OpenAI envelope (an integer `code`, as vLLM's
/// is, becomes a string; a non-JSON body becomes the message).
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
        TokenUsage::from_openai,
    )
}

fn result_line(
    line_no: u64,
    custom_id: String,
    last: Attempt,
    usage_of: impl Fn(&Value) -> TokenUsage,
) -> LineResult {
    let id = batch_request_id();
    let (ok, value, usage) = match last {
        Attempt::Success {
            status,
            request_id,
            body,
        } => {
            let u = usage_of(&body);
            let usage = LineUsage {
                input_tokens: u.input_tokens,
                cached_tokens: u.cached_tokens,
                output_tokens: u.output_tokens,
                reasoning_tokens: u.reasoning_tokens,
            };
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
        Some(custom_id),
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    )
}

/// The error-file line of a request that never ran because its key or
/// team ran out of budget.
pub fn budget_line(line_no: u64, custom_id: &str) -> LineResult {
    not_run_line(
        line_no,
        Some(custom_id),
        "budget_exceeded",
        "This request was not executed: the budget of its key or team was exceeded.",
    )
}

/// The error-file line of a request that got no upstream answer, with why
/// (`custom_id` is `null` for a line too broken to name one).
pub(super) fn not_run_line(
    line_no: u64,
    custom_id: Option<&str>,
    code: &str,
    message: &str,
) -> LineResult {
    let v = json!({"id": batch_request_id(), "custom_id": custom_id, "response": null,
        "error": {"code": code, "message": message}});
    LineResult {
        line_no,
        custom_id: custom_id.unwrap_or_default().to_string(),
        ok: false,
        line: v.to_string(),
        usage: None,
        charge: None,
    }
}
