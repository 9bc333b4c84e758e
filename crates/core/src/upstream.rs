//! The seam between the batch engine and one upstream server: how one
//! request line reaches it, how its usage is read, whether it is up, how
//! loaded it says it is, and whether it has its own batch API. The engine owns everything generic —
//! retries, outage pauses, journaling, pricing — and names no server;
//! provider crates implement this trait (an OpenAI-compatible HTTP client
//! covers vLLM, SGLang, TGI, llama.cpp, Ollama, …).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Map, Value};

/// What one request came back with, before any retry decision.
#[derive(Debug)]
pub enum Reply {
    /// An HTTP answer. `body` is `Err` when the answer was cut off.
    Answered {
        status: u16,
        /// The upstream's own request id (`x-request-id`), if it sent one.
        request_id: Option<String>,
        /// `Retry-After`, if it said so.
        retry_after: Option<Duration>,
        body: Result<Bytes, String>,
    },
    /// No HTTP answer: refused, reset, or no answer in time.
    NoAnswer { message: String },
}

/// Tokens one successful request used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

impl TokenUsage {
    /// OpenAI's `usage` object, in either of its shapes: the Responses API's
    /// (`input_tokens`, `output_tokens` and their `_details`) or the older
    /// endpoints' (`prompt_tokens` — or, for embeddings and scores,
    /// `total_tokens` — `completion_tokens` and their `_details`).
    pub fn from_openai(body: &Value) -> TokenUsage {
        let u = &body["usage"];
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        if u["input_tokens"].is_u64() || u["output_tokens"].is_u64() {
            return TokenUsage {
                input_tokens: n(&u["input_tokens"]),
                cached_tokens: n(&u["input_tokens_details"]["cached_tokens"]),
                output_tokens: n(&u["output_tokens"]),
                reasoning_tokens: n(&u["output_tokens_details"]["reasoning_tokens"]),
            };
        }
        let input = if u["prompt_tokens"].is_u64() {
            n(&u["prompt_tokens"])
        } else {
            n(&u["total_tokens"])
        };
        TokenUsage {
            input_tokens: input,
            cached_tokens: n(&u["prompt_tokens_details"]["cached_tokens"]),
            output_tokens: n(&u["completion_tokens"]),
            reasoning_tokens: n(&u["completion_tokens_details"]["reasoning_tokens"]),
        }
    }
}

/// What a server reports of its own load (for vLLM, its Prometheus
/// gauges), summed over its engines. Adaptive concurrency reads it where
/// a server exports it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerLoad {
    /// Requests in its running batch.
    pub running: f64,
    /// Requests waiting for a place in the batch.
    pub waiting: f64,
    /// Fraction of its KV cache in use (0 to 1), if it says.
    pub kv_cache_usage: Option<f64>,
}

/// One upstream server (one deployment's `api_base`), as the engine sees
/// it. The defaults are OpenAI's conventions; an implementation overrides
/// what its server does differently.
#[async_trait]
pub trait Upstream: Send + Sync + fmt::Debug {
    /// What its spans report as `gen_ai.system`, e.g. `"vllm"`.
    fn system(&self) -> &str;

    /// Sends one request `body` (its `model` already the served name) to
    /// `endpoint`, an OpenAI path such as `/v1/chat/completions`.
    async fn send(&self, endpoint: &str, body: &Map<String, Value>) -> Reply;

    /// Whether the server answers at all: `Ok` when up, else why not. Used
    /// to resume dispatch after an outage and by `GET /health`.
    async fn health(&self) -> Result<(), String>;

    /// Whether the server has its own OpenAI Files and Batch API, so that
    /// batches may be forwarded to it (`batch_api: auto`).
    async fn has_batch_api(&self) -> bool {
        false
    }

    /// The server's own load figures, read now; `None` when it exports
    /// none or they could not be read. The engine then sizes its
    /// concurrency from latency alone.
    async fn load(&self) -> Option<ServerLoad> {
        None
    }

    /// The tokens a successful answer on `endpoint` used.
    fn usage(&self, _endpoint: &str, body: &Value) -> TokenUsage {
        TokenUsage::from_openai(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_reads_chat_responses_and_embedding_shapes() {
        let chat = serde_json::json!({"usage": {"prompt_tokens": 7, "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 1}}});
        assert_eq!(
            TokenUsage::from_openai(&chat),
            TokenUsage {
                input_tokens: 7,
                cached_tokens: 2,
                output_tokens: 3,
                reasoning_tokens: 1
            }
        );
        let responses = serde_json::json!({"usage": {"input_tokens": 11, "output_tokens": 24,
            "input_tokens_details": {"cached_tokens": 5},
            "output_tokens_details": {"reasoning_tokens": 8}, "total_tokens": 35}});
        assert_eq!(
            TokenUsage::from_openai(&responses),
            TokenUsage {
                input_tokens: 11,
                cached_tokens: 5,
                output_tokens: 24,
                reasoning_tokens: 8
            }
        );
        let embedding = serde_json::json!({"usage": {"total_tokens": 9}});
        assert_eq!(TokenUsage::from_openai(&embedding).input_tokens, 9);
        assert_eq!(
            TokenUsage::from_openai(&serde_json::json!({})),
            TokenUsage::default()
        );
    }
}
