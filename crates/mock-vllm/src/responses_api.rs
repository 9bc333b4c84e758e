//! `POST /v1/responses`: vLLM's Responses API, answered deterministically.
//!
//! Its usage has the Responses shape — `input_tokens`,
//! `input_tokens_details.cached_tokens`, `output_tokens`,
//! `output_tokens_details.reasoning_tokens`, `total_tokens` — not chat's
//! `prompt_tokens`/`completion_tokens`. Without a model or a prefix cache,
//! the mock makes the details predictable from the request alone (see
//! [`responses_usage`]), so tests can check that a gateway reads and adds
//! them up.

use serde_json::{json, Value};

use crate::responses::{reply_text, unix_now};
use crate::usage::{words, DEFAULT_COMPLETION_TOKENS};

/// Reasoning tokens the mock "thinks" when a request asks for reasoning.
pub const REASONING_TOKENS: u64 = 8;

/// The usage the mock reports for a `/v1/responses` request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponsesUsage {
    /// Words of `instructions` plus words of `input` (a string, or the text
    /// of every message item: a `content` string or its parts' `text`).
    pub input_tokens: u64,
    /// The words of `instructions` when the request carries a
    /// `prompt_cache_key` (a prefix a real server would have cached), else 0.
    pub cached_tokens: u64,
    /// Visible tokens (16, or `max_output_tokens` when smaller) plus
    /// `reasoning_tokens`.
    pub output_tokens: u64,
    /// [`REASONING_TOKENS`] when `reasoning` is an object whose `effort` is
    /// not `"none"`, else 0.
    pub reasoning_tokens: u64,
}

impl ResponsesUsage {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// The usage the mock reports for `body` (see [`ResponsesUsage`]).
///
/// ```
/// use serde_json::json;
/// let body = json!({"model": "m", "instructions": "be brief", "input": "hi there",
///     "prompt_cache_key": "k", "reasoning": {"effort": "low"}, "max_output_tokens": 4});
/// let u = batchgate_mock_vllm::responses_usage(&body);
/// assert_eq!((u.input_tokens, u.cached_tokens), (4, 2));
/// assert_eq!((u.output_tokens, u.reasoning_tokens), (4 + 8, 8));
/// ```
pub fn responses_usage(body: &Value) -> ResponsesUsage {
    let instructions = body
        .get("instructions")
        .and_then(Value::as_str)
        .map_or(0, words);
    let input = body.get("input").map_or(0, input_words);
    let cached = if body.get("prompt_cache_key").is_some_and(Value::is_string) {
        instructions
    } else {
        0
    };
    let reasoning = match body.get("reasoning") {
        Some(r @ Value::Object(_)) if r.get("effort").and_then(Value::as_str) != Some("none") => {
            REASONING_TOKENS
        }
        _ => 0,
    };
    ResponsesUsage {
        input_tokens: instructions + input,
        cached_tokens: cached,
        output_tokens: visible_tokens(body) + reasoning,
        reasoning_tokens: reasoning,
    }
}

/// Visible output tokens: 16, or `max_output_tokens` when smaller.
fn visible_tokens(body: &Value) -> u64 {
    match body.get("max_output_tokens").and_then(Value::as_u64) {
        Some(n) if n < DEFAULT_COMPLETION_TOKENS => n,
        _ => DEFAULT_COMPLETION_TOKENS,
    }
}

/// Words of a Responses `input`: a string, or message items whose
/// `content` is a string or a list of parts with `text`.
fn input_words(input: &Value) -> u64 {
    match input {
        Value::String(s) => words(s),
        Value::Array(items) => items
            .iter()
            .map(|item| match item.get("content") {
                Some(Value::String(s)) => words(s),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .map(words)
                    .sum(),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// Checks a request the way vLLM would refuse it: `input` is required (a
/// string or a list of objects), `max_output_tokens` is at least 1, and
/// the mock does not run `background` responses.
pub(crate) fn check(body: &Value) -> Result<(), String> {
    match body.get("input") {
        Some(Value::String(_)) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => {}
        Some(_) => return Err("`input` must be a string or a list of input items.".into()),
        None => return Err("Field required: `input`.".into()),
    }
    match body.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some_and(|n| n >= 1) => {}
        Some(v) => return Err(format!("`max_output_tokens` must be at least 1, got {v}.")),
    }
    if body.get("background").and_then(Value::as_bool) == Some(true) {
        return Err("mock-vllm does not support `background: true`.".into());
    }
    Ok(())
}

/// vLLM's `response` object for `body`: a reasoning item when reasoning was
/// asked for, one assistant message, `status` `incomplete` (reason
/// `max_output_tokens`) when a cap of at most 16 stopped it. Returns the
/// body and its (input, output) token counts.
pub(crate) fn answer(body: &Value, model: &str) -> (Value, u64, u64) {
    let usage = responses_usage(body);
    let visible = usage.output_tokens - usage.reasoning_tokens;
    let capped = body
        .get("max_output_tokens")
        .and_then(Value::as_u64)
        .is_some_and(|n| n <= DEFAULT_COMPLETION_TOKENS);
    let mut output = Vec::new();
    if usage.reasoning_tokens > 0 {
        output.push(json!({
            "id": format!("rs_{:032x}", rand::random::<u128>()),
            "type": "reasoning",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": reply_text(usage.reasoning_tokens)}],
            "encrypted_content": null,
            "status": null,
        }));
    }
    output.push(json!({
        "id": format!("msg_{:032x}", rand::random::<u128>()),
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{
            "type": "output_text",
            "text": reply_text(visible),
            "annotations": [],
            "logprobs": null,
        }],
    }));
    let out = json!({
        "id": format!("resp_{:032x}", rand::random::<u128>()),
        "object": "response",
        "created_at": unix_now(),
        "model": model,
        "status": if capped { "incomplete" } else { "completed" },
        "incomplete_details": if capped { json!({"reason": "max_output_tokens"}) } else { Value::Null },
        "instructions": body.get("instructions").cloned().unwrap_or(Value::Null),
        "metadata": body.get("metadata").cloned().unwrap_or(Value::Null),
        "output": output,
        "parallel_tool_calls": true,
        "temperature": body.get("temperature").cloned().unwrap_or(json!(1.0)),
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p").cloned().unwrap_or(json!(1.0)),
        "background": false,
        "max_output_tokens": body.get("max_output_tokens").cloned().unwrap_or(json!(4096)),
        "previous_response_id": null,
        "reasoning": body.get("reasoning").cloned().unwrap_or(Value::Null),
        "service_tier": "auto",
        "text": null,
        "truncation": "disabled",
        "user": null,
        "usage": {
            "input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens, "tool_output_tokens": 0},
            "total_tokens": usage.total_tokens(),
        },
    });
    (out, usage.input_tokens, usage.output_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_items_count_their_text() {
        let body = json!({"input": [
            {"role": "user", "content": "one two"},
            {"role": "user", "content": [{"type": "input_text", "text": "three"}]}
        ]});
        let u = responses_usage(&body);
        assert_eq!((u.input_tokens, u.cached_tokens), (3, 0));
        assert_eq!((u.output_tokens, u.reasoning_tokens), (16, 0));
        let none = json!({"input": "x", "reasoning": {"effort": "none"}});
        assert_eq!(responses_usage(&none).reasoning_tokens, 0);
    }

    #[test]
    fn answers_in_vllms_shape() {
        let body = json!({"input": "hi", "reasoning": {"effort": "high"}, "max_output_tokens": 3});
        let (out, input, output) = answer(&body, "m");
        assert_eq!((input, output), (1, 3 + REASONING_TOKENS));
        assert_eq!(out["object"], "response");
        assert_eq!(out["status"], "incomplete");
        assert_eq!(out["output"][0]["type"], "reasoning");
        assert_eq!(out["output"][1]["content"][0]["text"], "mock reply 1");
        assert_eq!(out["usage"]["output_tokens_details"]["reasoning_tokens"], 8);
        assert!(check(&json!({"input": 3})).is_err());
        assert!(check(&json!({"input": "x", "background": true})).is_err());
        assert!(check(&json!({"input": "x", "max_output_tokens": 0})).is_err());
        assert!(check(&json!({"input": [{"role": "user", "content": "x"}]})).is_ok());
    }
}
