//! Request counters, readable via [`MockHandle::stats`](crate::MockHandle::stats)
//! or `GET /mock/stats`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// A snapshot of the mock's counters since start or the last reset.
///
/// Only the inference endpoints (`POST /v1/chat/completions`,
/// `/v1/completions`, `/v1/embeddings`, `/v1/score`, `/v1/rerank`,
/// `/v1/responses`) are
/// counted. Every request that reaches one counts in `requests` and
/// `by_endpoint`, whatever its fate (401, 400, injected fault, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MockStats {
    /// Inference requests received.
    pub requests: u64,
    /// Inference requests answered `200 OK`.
    pub succeeded: u64,
    /// Requests received per endpoint path, e.g. `"/v1/chat/completions"`.
    pub by_endpoint: BTreeMap<String, u64>,
    /// Requests received per body digest ([`body_digest`](crate::body_digest);
    /// bodies that are not JSON are keyed by the SHA-256 of their raw bytes).
    /// Requests rejected by authentication are not counted here.
    pub by_body: HashMap<String, u64>,
    /// Requests answered `200 OK` per body digest: how many times the
    /// upstream did the work for one body (a body answered twice was paid
    /// for twice, whether or not the client saw both answers).
    pub succeeded_by_body: HashMap<String, u64>,
    /// Sum of `usage.prompt_tokens` over successful answers.
    pub prompt_tokens: u64,
    /// Sum of `usage.completion_tokens` over successful answers.
    pub completion_tokens: u64,
}

impl MockStats {
    /// Attempts seen so far for the body with this digest (0 if none).
    pub fn attempts_for(&self, digest: &str) -> u64 {
        self.by_body.get(digest).copied().unwrap_or(0)
    }

    /// `200 OK` answers so far for the body with this digest (0 if none).
    pub fn successes_for(&self, digest: &str) -> u64 {
        self.succeeded_by_body.get(digest).copied().unwrap_or(0)
    }

    /// Requests received on one endpoint path (0 if none).
    pub fn endpoint(&self, path: &str) -> u64 {
        self.by_endpoint.get(path).copied().unwrap_or(0)
    }

    pub(crate) fn record_received(&mut self, path: &str) {
        self.requests += 1;
        *self.by_endpoint.entry(path.to_string()).or_insert(0) += 1;
    }

    /// Counts an attempt for `digest` and returns the attempt number (1-based).
    pub(crate) fn record_body(&mut self, digest: &str) -> u64 {
        let n = self.by_body.entry(digest.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    pub(crate) fn record_success(
        &mut self,
        digest: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
    ) {
        self.succeeded += 1;
        *self
            .succeeded_by_body
            .entry(digest.to_string())
            .or_insert(0) += 1;
        self.prompt_tokens += prompt_tokens;
        self.completion_tokens += completion_tokens;
    }
}
