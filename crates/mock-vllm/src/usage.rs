//! Deterministic token accounting and request-body digests.
//!
//! The mock has no tokenizer: **one token = one whitespace-separated word**
//! (`str::split_whitespace`). Pre-tokenized prompts (arrays of integers) count
//! one token per integer. Tests compute expected usage with
//! [`prompt_tokens_of`] and [`completion_tokens_of`] on the very JSON body they
//! send; the server uses the same functions to fill `usage`.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Completion tokens produced per choice when the request sets no smaller cap.
pub const DEFAULT_COMPLETION_TOKENS: u64 = 16;

/// Prompt tokens the mock reports for a request body (any endpoint).
///
/// The body's kind is recognised by its fields, first match wins:
///
/// | field(s)              | endpoint          | counted                                                        |
/// |-----------------------|-------------------|----------------------------------------------------------------|
/// | `messages`            | chat (or embeddings in chat form) | words of every message `content`: a string, or the `text` of each `{"type":"text"}` part of an array; other parts and `null` count 0 |
/// | `prompt`              | completions       | words of each string, 1 per integer token id, summed over all prompts |
/// | `input`               | embeddings        | same as `prompt`                                               |
/// | `text_1` / `text_2`   | score             | for each scored pair, words of both sides (a single `text_1` is repeated for every `text_2`) |
/// | `query` + `documents` | rerank            | for each document, words of the query plus words of the document (a string or `{"text": ..}`) |
///
/// Anything else counts 0. `/v1/responses` bodies (`instructions` plus
/// `input` items) are counted by [`responses_usage`](crate::responses_usage).
///
/// ```
/// use serde_json::json;
/// let body = json!({"model": "m", "messages": [
///     {"role": "system", "content": "be brief"},
///     {"role": "user", "content": [{"type": "text", "text": "hello there world"}]}
/// ]});
/// assert_eq!(batchgate_mock_vllm::prompt_tokens_of(&body), 5);
/// ```
pub fn prompt_tokens_of(body: &Value) -> u64 {
    if let Some(messages) = body.get("messages") {
        return chat_prompt_tokens(messages);
    }
    if let Some(prompt) = body.get("prompt") {
        return input_tokens(prompt);
    }
    if let Some(input) = body.get("input") {
        return input_tokens(input);
    }
    if body.get("text_1").is_some() || body.get("text_2").is_some() {
        return match score_pairs(body) {
            Ok(pairs) => pairs.iter().map(|(a, b)| words(a) + words(b)).sum(),
            Err(_) => 0,
        };
    }
    if body.get("query").is_some() {
        return match rerank_docs(body) {
            Ok((query, docs)) => docs.iter().map(|d| words(&query) + words(d)).sum(),
            Err(_) => 0,
        };
    }
    0
}

/// Completion tokens the mock reports for a request body (any endpoint).
///
/// Per choice: `max_completion_tokens` (else `max_tokens`) when it is given
/// and smaller than 16, otherwise 16 ([`DEFAULT_COMPLETION_TOKENS`]). The
/// number of choices is `n` (default 1) for chat bodies (`messages`), and `n`
/// times the number of prompts for completions bodies (`prompt`: one string
/// or token-id array is one prompt, an array of them is several). Bodies of
/// the pooling endpoints (embeddings, score, rerank) count 0.
///
/// ```
/// use serde_json::json;
/// use batchgate_mock_vllm::completion_tokens_of;
/// assert_eq!(completion_tokens_of(&json!({"model": "m", "messages": []})), 16);
/// assert_eq!(completion_tokens_of(&json!({"model": "m", "messages": [], "max_tokens": 5})), 5);
/// assert_eq!(completion_tokens_of(&json!({"model": "m", "prompt": ["a", "b"], "max_tokens": 100})), 32);
/// assert_eq!(completion_tokens_of(&json!({"model": "m", "input": "x"})), 0);
/// ```
pub fn completion_tokens_of(body: &Value) -> u64 {
    let per_choice = completion_tokens_per_choice(body);
    let n = choices_per_prompt(body);
    if body.get("messages").is_some() {
        per_choice.saturating_mul(n)
    } else if let Some(prompt) = body.get("prompt") {
        let prompts = split_inputs(prompt).len() as u64;
        per_choice.saturating_mul(n).saturating_mul(prompts)
    } else {
        0
    }
}

/// A stable digest of a JSON request body: lowercase hex SHA-256 of its
/// canonical form (object keys sorted, no whitespace). Two bodies that differ
/// only in key order or formatting share a digest. Keys of
/// [`MockStats::by_body`](crate::MockStats::by_body) and the unit of
/// [`Faults::fail_first_n`](crate::Faults::fail_first_n).
pub fn body_digest(body: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    hex_sha256(canonical.as_bytes())
}

/// Digest of a body that is not valid JSON: hex SHA-256 of the raw bytes.
pub(crate) fn raw_digest(bytes: &[u8]) -> String {
    hex_sha256(bytes)
}

/// Number of whitespace-separated words in `s`.
pub(crate) fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Completion tokens for one choice (see [`completion_tokens_of`]).
pub(crate) fn completion_tokens_per_choice(body: &Value) -> u64 {
    let cap = body
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64));
    match cap {
        Some(n) if n < DEFAULT_COMPLETION_TOKENS => n,
        _ => DEFAULT_COMPLETION_TOKENS,
    }
}

/// The request's `n` (choices per prompt), default 1.
pub(crate) fn choices_per_prompt(body: &Value) -> u64 {
    body.get("n").and_then(Value::as_u64).unwrap_or(1)
}

/// Splits a `prompt`/`input` value into individual prompts: a string or an
/// array of integers is one prompt; any other array is a list of prompts.
pub(crate) fn split_inputs(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) if items.iter().all(Value::is_number) && !items.is_empty() => vec![v],
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Whether `v` is a valid single prompt: a string or a non-empty array of
/// non-negative integers.
pub(crate) fn is_single_prompt(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Array(items) => !items.is_empty() && items.iter().all(|t| t.as_u64().is_some()),
        _ => false,
    }
}

/// Tokens of a `prompt`/`input` value: words of strings, 1 per number, summed.
pub(crate) fn input_tokens(v: &Value) -> u64 {
    match v {
        Value::String(s) => words(s),
        Value::Number(_) => 1,
        Value::Array(items) => items.iter().map(input_tokens).sum(),
        _ => 0,
    }
}

/// Words of every message content in a chat `messages` array.
fn chat_prompt_tokens(messages: &Value) -> u64 {
    let Some(messages) = messages.as_array() else {
        return 0;
    };
    messages
        .iter()
        .map(|m| match m.get("content") {
            Some(Value::String(s)) => words(s),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .map(words)
                .sum(),
            _ => 0,
        })
        .sum()
}

/// The (text_1, text_2) pairs of a score request, following vLLM: a single
/// `text_1` (string or one-element list) is paired with every `text_2`;
/// otherwise both lists must have the same length and are zipped.
pub(crate) fn score_pairs(body: &Value) -> Result<Vec<(String, String)>, String> {
    fn strings(v: Option<&Value>, name: &str) -> Result<Vec<String>, String> {
        match v {
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("`{name}` must be a string or a list of strings"))
                })
                .collect(),
            _ => Err(format!("`{name}` must be a string or a list of strings")),
        }
    }
    let t1 = strings(body.get("text_1"), "text_1")?;
    let t2 = strings(body.get("text_2"), "text_2")?;
    if t2.is_empty() {
        return Err("`text_2` must not be empty".to_string());
    }
    match t1.as_slice() {
        [single] => Ok(t2.into_iter().map(|b| (single.clone(), b)).collect()),
        _ if t1.len() == t2.len() => Ok(t1.into_iter().zip(t2).collect()),
        _ => Err(format!(
            "text_1 has {} items and text_2 has {}; they must match or text_1 must have one",
            t1.len(),
            t2.len()
        )),
    }
}

/// The query and document texts of a rerank request. Documents may be strings
/// or objects with a string `text`.
pub(crate) fn rerank_docs(body: &Value) -> Result<(String, Vec<String>), String> {
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .ok_or_else(|| "`query` must be a string".to_string())?;
    let docs = body
        .get("documents")
        .and_then(Value::as_array)
        .ok_or_else(|| "`documents` must be a list".to_string())?;
    let docs = docs
        .iter()
        .map(|d| match d {
            Value::String(s) => Ok(s.clone()),
            other => other
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| "each document must be a string or {\"text\": ..}".to_string()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((query.to_string(), docs))
}

fn hex_sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(&Value::String(k.clone()), out);
                out.push(':');
                if let Some(child) = map.get(k) {
                    write_canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        // Scalars: serde_json's own compact form never fails for these.
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": [1, {"y": 2, "x": "s"}]}"#)
            .unwrap_or(Value::Null);
        let b: Value =
            serde_json::from_str(r#"{"a":[1,{"x":"s","y":2}],"b":1}"#).unwrap_or(Value::Null);
        assert_eq!(body_digest(&a), body_digest(&b));
        assert_ne!(body_digest(&a), body_digest(&json!({"b": 2})));
        assert_eq!(body_digest(&a).len(), 64);
    }

    #[test]
    fn prompt_counting() {
        assert_eq!(prompt_tokens_of(&json!({"prompt": "a b  c"})), 3);
        assert_eq!(prompt_tokens_of(&json!({"prompt": ["a b", "c"]})), 3);
        assert_eq!(prompt_tokens_of(&json!({"prompt": [1, 2, 3, 4]})), 4);
        assert_eq!(prompt_tokens_of(&json!({"input": [[1, 2], [3]]})), 3);
        assert_eq!(
            prompt_tokens_of(&json!({"text_1": "q w", "text_2": ["a", "b c"]})),
            2 + 1 + 2 + 2
        );
        assert_eq!(
            prompt_tokens_of(&json!({"query": "q", "documents": ["a b", {"text": "c"}]})),
            1 + 2 + 1 + 1
        );
        assert_eq!(prompt_tokens_of(&json!({"model": "m"})), 0);
    }

    #[test]
    fn completion_counting() {
        let body = json!({"messages": [], "max_tokens": 100, "max_completion_tokens": 3, "n": 2});
        assert_eq!(completion_tokens_of(&body), 6);
        assert_eq!(completion_tokens_of(&json!({"prompt": [1, 2]})), 16);
        assert_eq!(
            completion_tokens_of(&json!({"prompt": [[1], [2]], "max_tokens": 0})),
            0
        );
    }

    #[test]
    fn score_pair_rules() {
        assert!(score_pairs(&json!({"text_1": ["a", "b"], "text_2": ["c"]})).is_err());
        assert_eq!(
            score_pairs(&json!({"text_1": ["a", "b"], "text_2": ["c", "d"]})).map(|p| p.len()),
            Ok(2)
        );
    }
}
