//! # batchgate-mock-vllm
//!
//! A stand-in for `vllm serve` (vLLM's OpenAI-compatible server) with
//! deterministic answers, latency and fault injection. Used by batchgate's
//! tests, benchmarks and quickstart. No model runs: answers are made from the
//! request text, so expected usage can be computed by hand.
//!
//! ## Contents
//!
//! - **Starting a server** — [`MockVllm::start`] / [`MockVllm::start_on`]
//!   return a [`MockHandle`] ([`MockHandle::base_url`], [`MockHandle::stats`],
//!   [`MockHandle::reset`], [`MockHandle::set_faults`], [`MockHandle::shutdown`];
//!   dropping the handle also stops the server). The `mock-vllm` binary wraps
//!   the same thing for use as a separate process (`mock-vllm --help`).
//! - **Configuration** — [`MockConfig`] (served models, API key, latency,
//!   seed, the batch model: capacity, scheduling policy, slowdown) and [`Faults`] (500s, 429s with `Retry-After`, dropped connections,
//!   hangs, and "fail the first N attempts of each body").
//! - **Token accounting** — [`prompt_tokens_of`], [`completion_tokens_of`]
//!   ([`responses_usage`] for `/v1/responses`):
//!   one token per whitespace-separated word; 16 completion tokens per choice
//!   unless `max_tokens`/`max_completion_tokens` is smaller. Replies read
//!   `"mock reply 1 2 3 ..."` with exactly that many words ([`reply_text`]).
//! - **Counters** — [`MockStats`], keyed by endpoint and by [`body_digest`];
//!   [`LoadStats`], the batch model's time-averaged running and waiting
//!   requests and throughput.
//!
//! ## The batch model
//!
//! With [`MockConfig::capacity`] (`--capacity N`) the mock batches like
//! vLLM: N requests run at once and the rest wait — in arrival order, or
//! with [`SchedulingPolicy::Priority`] (`--scheduling-policy priority`) by
//! the request field `priority`, lower first. A request runs for
//! `latency × (1 + slowdown × running / N)`. A non-zero `priority` without
//! priority scheduling is refused with vLLM's 400. Without a capacity every
//! request runs at once for exactly `latency`.
//!
//! ## HTTP surface
//!
//! | route | behaviour |
//! |---|---|
//! | `POST /v1/chat/completions` | `chat.completion`; `n` choices; `finish_reason` is `"length"` when `max_tokens` ≤ 16 was given, else `"stop"` |
//! | `POST /v1/completions` | `text_completion`; `n` choices per prompt (string, strings, token ids) |
//! | `POST /v1/embeddings` | `list` of 8-float unit vectors derived from each input's hash ([`embedding_of`]); `encoding_format: "base64"` supported |
//! | `POST /v1/score` | `text_1` × `text_2` pairs scored by word overlap ([`similarity`]) |
//! | `POST /v1/rerank` | `query` × `documents`, sorted by relevance, `top_n` honoured |
//! | `POST /v1/responses` | vLLM's `response` object (a `reasoning` item when `reasoning` is asked for, one assistant `message`); usage in the Responses shape with cached and reasoning tokens made predictable by [`responses_usage`] |
//! | `GET /v1/models` | the served models, `owned_by: "vllm"`, `max_model_len: 4096` |
//! | `GET /health` | 200, empty body |
//! | `GET /metrics` | vLLM's `vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc`, `vllm:request_success_total`, `vllm:prompt_tokens_total`, `vllm:generation_tokens_total` (labels `model_name`, `engine`) |
//! | `GET /mock/stats` | [`MockStats`] as JSON |
//! | `GET /mock/load` | [`LoadStats`] as JSON |
//! | `POST /mock/reset` | zero the counters and start a new load window (204) |
//! | `GET`/`POST /mock/faults` | read / patch [`Faults`] (fields given replace the current ones) |
//!
//! Errors use vLLM's body `{"error":{"message","type","param","code"}}` with
//! an integer `code`: unknown model → 404 `NotFoundError` (``The model `X`
//! does not exist.``); malformed JSON, missing `model`, invalid fields or
//! `"stream": true` → 400 `BadRequestError`. With an API key configured,
//! `/v1/*` without `Authorization: Bearer <key>` → 401 `{"error":"Unauthorized"}`.
//!
//! ## Order of events for an inference request
//!
//! 1. counted in [`MockStats::requests`] and [`MockStats::by_endpoint`];
//! 2. API key checked (401);
//! 3. counted in [`MockStats::by_body`]; the fault is chosen ([`Faults`]);
//!    a hang stops here;
//! 4. a `priority` the scheduling policy does not allow is refused (400);
//! 5. it waits for a seat in the batch, then runs for its latency;
//! 6. a drop, 500 or 429 fault is applied;
//! 7. the body is validated (400/404) and answered; 200s count in
//!    [`MockStats::succeeded`] and [`MockStats::succeeded_by_body`].

mod config;
mod metrics;
mod responses;
mod responses_api;
mod routes;
mod scheduler;
mod server;
mod state;
mod stats;
mod usage;

pub use config::{Faults, MockConfig, DEFAULT_MODEL, DEFAULT_SLOWDOWN};
pub use responses::{embedding_of, reply_text, similarity, EMBEDDING_DIM};
pub use responses_api::{responses_usage, ResponsesUsage, REASONING_TOKENS};
pub use scheduler::{LoadStats, SchedulingPolicy};
pub use server::{MockHandle, MockVllm, SHUTDOWN_GRACE};
pub use stats::MockStats;
pub use usage::{body_digest, completion_tokens_of, prompt_tokens_of, DEFAULT_COMPLETION_TOKENS};
