//! vLLM-shaped response bodies: errors and the five inference endpoints.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::usage::{self, DEFAULT_COMPLETION_TOKENS};

/// Length of every embedding vector the mock returns.
pub const EMBEDDING_DIM: usize = 8;

/// vLLM's error body: `{"error":{"message","type","param","code"}}` with the
/// HTTP status as an integer `code`.
pub(crate) fn error(
    status: StatusCode,
    kind: &str,
    message: &str,
    param: Option<&str>,
) -> Response {
    let body = json!({
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": status.as_u16(),
        }
    });
    (status, Json(body)).into_response()
}

/// 400 `BadRequestError`.
pub(crate) fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "BadRequestError", message, None)
}

/// 404 for a model that is not served, worded like vLLM.
pub(crate) fn model_not_found(model: &str) -> Response {
    let message = format!("The model `{model}` does not exist.");
    error(
        StatusCode::NOT_FOUND,
        "NotFoundError",
        &message,
        Some("model"),
    )
}

/// vLLM's 401 body for a missing or wrong API key.
pub(crate) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "Unauthorized"})),
    )
        .into_response()
}

/// Injected 500.
pub(crate) fn injected_failure() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        "mock-vllm: injected internal server error",
        None,
    )
}

/// Injected 429 with `Retry-After`.
pub(crate) fn rate_limited(retry_after_secs: u64) -> Response {
    let message = format!("mock-vllm: rate limit exceeded, retry after {retry_after_secs}s");
    let mut resp = error(
        StatusCode::TOO_MANY_REQUESTS,
        "RateLimitError",
        &message,
        None,
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

/// The deterministic reply text of `k` words: `"mock reply 1 2 3 ..."`
/// truncated to exactly `k` words (`""` for 0).
pub fn reply_text(k: u64) -> String {
    let mut out: Vec<String> = Vec::new();
    for i in 0..k {
        out.push(match i {
            0 => "mock".to_string(),
            1 => "reply".to_string(),
            n => (n - 1).to_string(),
        });
    }
    out.join(" ")
}

/// Unix seconds now (0 if the clock is before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A vLLM-style request id: prefix plus 32 random hex digits.
fn random_id(prefix: &str) -> String {
    format!("{prefix}-{:032x}", rand::random::<u128>())
}

/// `"length"` when an explicit cap of at most 16 tokens stopped generation.
fn finish_reason(body: &Value) -> &'static str {
    let cap = body
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64));
    match cap {
        Some(n) if n <= DEFAULT_COMPLETION_TOKENS => "length",
        _ => "stop",
    }
}

fn generation_usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": null,
    })
}

fn pooling_usage(prompt: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "total_tokens": prompt,
        "completion_tokens": 0,
        "prompt_tokens_details": null,
    })
}

/// `chat.completion` object. Returns the body and its (prompt, completion) usage.
pub(crate) fn chat(body: &Value, model: &str) -> (Value, u64, u64) {
    let per_choice = usage::completion_tokens_per_choice(body);
    let n = usage::choices_per_prompt(body);
    let text = reply_text(per_choice);
    let reason = finish_reason(body);
    let choices: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "reasoning_content": null,
                    "tool_calls": [],
                },
                "logprobs": null,
                "finish_reason": reason,
                "stop_reason": null,
            })
        })
        .collect();
    let prompt_tokens = usage::prompt_tokens_of(body);
    let completion_tokens = per_choice * n;
    let out = json!({
        "id": random_id("chatcmpl"),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": choices,
        "usage": generation_usage(prompt_tokens, completion_tokens),
        "prompt_logprobs": null,
    });
    (out, prompt_tokens, completion_tokens)
}

/// `text_completion` object: `n` choices per prompt, indexed prompt-major.
pub(crate) fn completion(body: &Value, model: &str, prompts: usize) -> (Value, u64, u64) {
    let per_choice = usage::completion_tokens_per_choice(body);
    let n = usage::choices_per_prompt(body);
    let text = reply_text(per_choice);
    let reason = finish_reason(body);
    let total_choices = (prompts as u64) * n;
    let choices: Vec<Value> = (0..total_choices)
        .map(|i| {
            json!({
                "index": i,
                "text": text,
                "logprobs": null,
                "finish_reason": reason,
                "stop_reason": null,
                "prompt_logprobs": null,
            })
        })
        .collect();
    let prompt_tokens = usage::prompt_tokens_of(body);
    let completion_tokens = per_choice * total_choices;
    let out = json!({
        "id": random_id("cmpl"),
        "object": "text_completion",
        "created": unix_now(),
        "model": model,
        "choices": choices,
        "usage": generation_usage(prompt_tokens, completion_tokens),
    });
    (out, prompt_tokens, completion_tokens)
}

/// The deterministic embedding of one input (a string or token-id array):
/// [`EMBEDDING_DIM`] floats from the SHA-256 of its JSON form, L2-normalised.
pub fn embedding_of(input: &Value) -> Vec<f64> {
    let digest = Sha256::digest(input.to_string().as_bytes());
    let mut v: Vec<f64> = digest
        .chunks(2)
        .take(EMBEDDING_DIM)
        .map(|c| {
            let hi = c.first().copied().unwrap_or(0);
            let lo = c.get(1).copied().unwrap_or(0);
            f64::from(u16::from_be_bytes([hi, lo])) / 32767.5 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

/// Embeddings `list` object; `encoding_format: "base64"` gives little-endian
/// f32 bytes in base64, like vLLM.
pub(crate) fn embeddings(body: &Value, model: &str, inputs: &[&Value]) -> (Value, u64) {
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let vector = embedding_of(input);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|x| (*x as f32).to_le_bytes())
                    .collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"index": i, "object": "embedding", "embedding": embedding})
        })
        .collect();
    let prompt_tokens = usage::prompt_tokens_of(body);
    let out = json!({
        "id": random_id("embd"),
        "object": "list",
        "created": unix_now(),
        "model": model,
        "data": data,
        "usage": pooling_usage(prompt_tokens),
    });
    (out, prompt_tokens)
}

/// Deterministic relevance of `b` to `a`: Jaccard overlap of their lowercase
/// word sets, in `0.0..=1.0` (0 when both are empty).
pub fn similarity(a: &str, b: &str) -> f64 {
    let set = |s: &str| -> BTreeSet<String> {
        s.split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (a, b) = (set(a), set(b));
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f64 / union as f64
}

/// Score `list` object, one `score` per pair.
pub(crate) fn score(body: &Value, model: &str, pairs: &[(String, String)]) -> (Value, u64) {
    let data: Vec<Value> = pairs
        .iter()
        .enumerate()
        .map(|(i, (a, b))| json!({"index": i, "object": "score", "score": similarity(a, b)}))
        .collect();
    let prompt_tokens = usage::prompt_tokens_of(body);
    let out = json!({
        "id": random_id("score"),
        "object": "list",
        "created": unix_now(),
        "model": model,
        "data": data,
        "usage": pooling_usage(prompt_tokens),
    });
    (out, prompt_tokens)
}

/// Rerank object: results sorted by descending relevance (ties by index),
/// cut to `top_n` when it is a positive number.
pub(crate) fn rerank(body: &Value, model: &str, query: &str, docs: &[String]) -> (Value, u64) {
    let mut scored: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (i, similarity(query, d)))
        .collect();
    scored.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
    if let Some(top_n) = body.get("top_n").and_then(Value::as_u64) {
        if top_n > 0 {
            scored.truncate(usize::try_from(top_n).unwrap_or(usize::MAX));
        }
    }
    let results: Vec<Value> = scored
        .into_iter()
        .map(|(i, s)| {
            let text = docs.get(i).cloned().unwrap_or_default();
            json!({"index": i, "document": {"text": text}, "relevance_score": s})
        })
        .collect();
    let prompt_tokens = usage::prompt_tokens_of(body);
    let out = json!({
        "id": random_id("rerank"),
        "model": model,
        "usage": {"total_tokens": prompt_tokens},
        "results": results,
    });
    (out, prompt_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_has_exact_word_count() {
        assert_eq!(reply_text(0), "");
        assert_eq!(reply_text(1), "mock");
        assert_eq!(reply_text(4), "mock reply 1 2");
        for k in 0..40 {
            assert_eq!(usage::words(&reply_text(k)), k);
        }
    }

    #[test]
    fn embeddings_are_deterministic_and_normalised() {
        let a = embedding_of(&json!("hello"));
        assert_eq!(a, embedding_of(&json!("hello")));
        assert_ne!(a, embedding_of(&json!("world")));
        assert_eq!(a.len(), EMBEDDING_DIM);
        let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-9);
    }

    #[test]
    fn similarity_bounds() {
        assert_eq!(similarity("", ""), 0.0);
        assert_eq!(similarity("Paris France", "paris, france"), 1.0);
        assert!(similarity("capital of France", "Paris is the capital") > 0.0);
    }
}
