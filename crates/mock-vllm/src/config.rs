//! Configuration: which models are served, authentication, latency and faults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::scheduler::SchedulingPolicy;

/// The model served when [`MockConfig::default`] is used.
pub const DEFAULT_MODEL: &str = "meta-llama/Llama-2-7b-chat-hf";

/// How a mock server behaves. Build one with struct-update syntax:
///
/// ```
/// use batchgate_mock_vllm::{Faults, MockConfig};
/// let cfg = MockConfig {
///     latency: std::time::Duration::from_millis(20),
///     faults: Faults { fail_first_n: 2, ..Faults::default() },
///     ..MockConfig::default()
/// };
/// assert_eq!(cfg.models, vec!["meta-llama/Llama-2-7b-chat-hf".to_string()]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// Served model names (vLLM's `--served-model-name`). A request naming any
    /// other model gets vLLM's 404. Must not be empty for inference to succeed.
    pub models: Vec<String>,
    /// When set, every `/v1/*` request must carry `Authorization: Bearer <key>`
    /// (vLLM's `--api-key`); `/health`, `/metrics` and `/mock/*` stay open.
    pub api_key: Option<String>,
    /// Fixed delay added before answering each inference request, whatever
    /// the answer (200, 400/404, injected 500/429, or a dropped connection);
    /// 401s and hung requests are not delayed.
    pub latency: Duration,
    /// Fault injection; can be changed at runtime with
    /// [`MockHandle::set_faults`](crate::MockHandle::set_faults) or `POST /mock/faults`.
    pub faults: Faults,
    /// Seed for the fault RNG, for reproducible fault sequences. `None` seeds
    /// from the OS.
    pub seed: Option<u64>,
    /// Sequences that run at once, as vLLM's continuous batching allows
    /// (its `--max-num-seqs`, or what its KV cache holds): more requests
    /// wait, in the order of `scheduling`, and show in
    /// `vllm:num_requests_waiting`. `None` (the default) runs every request
    /// at once for exactly `latency`, as before capacities existed.
    pub capacity: Option<usize>,
    /// How waiting requests are ordered (vLLM's `--scheduling-policy`).
    pub scheduling: SchedulingPolicy,
    /// With a capacity, how much longer a request runs when the batch is
    /// full: it takes `latency × (1 + slowdown × running / capacity)`,
    /// `running` counted when it starts (default 0.2).
    pub slowdown: f64,
}

/// The default [`MockConfig::slowdown`]: a request in a full batch takes
/// 20% longer than one running alone.
pub const DEFAULT_SLOWDOWN: f64 = 0.2;

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            models: vec![DEFAULT_MODEL.to_string()],
            api_key: None,
            latency: Duration::ZERO,
            faults: Faults::default(),
            seed: None,
            capacity: None,
            scheduling: SchedulingPolicy::Fcfs,
            slowdown: DEFAULT_SLOWDOWN,
        }
    }
}

/// Fault injection on the inference endpoints. The default injects nothing.
///
/// The `*_rate` fields are fractions in `0.0..=1.0` (out-of-range values are
/// clamped, NaN counts as 0). Each inference request draws **one** uniform
/// number `u` in `[0, 1)` and the fault ranges are laid end to end in this
/// order: `drop_rate`, `hang_rate`, `fail_rate`, `rate_limit_rate`. So with
/// `fail_rate = 0.2` and `rate_limit_rate = 0.1`, 20% of requests get a 500 and
/// another 10% a 429 (if the rates add up to more than 1, the later ones
/// shrink). `fail_first_n` is checked before the random draw.
///
/// Serialized with these exact field names; every field is optional when
/// deserializing (missing fields take their defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Fraction of requests answered `500` with a vLLM-shaped error body.
    pub fail_rate: f64,
    /// Fraction of requests answered `429` with `Retry-After: <retry_after_secs>`.
    pub rate_limit_rate: f64,
    /// Value of the `Retry-After` header on injected 429s (default 1).
    pub retry_after_secs: u64,
    /// Fraction of requests whose connection is closed without any HTTP response.
    pub drop_rate: f64,
    /// Fraction of requests that are never answered.
    pub hang_rate: f64,
    /// Each distinct request body (see [`body_digest`](crate::body_digest)) is
    /// answered `500` for its first `fail_first_n` attempts, then normally.
    /// Attempts are counted in [`MockStats::by_body`](crate::MockStats::by_body),
    /// so a reset starts the count again.
    pub fail_first_n: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fail_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            drop_rate: 0.0,
            hang_rate: 0.0,
            fail_first_n: 0,
        }
    }
}

impl Faults {
    /// A copy with every rate clamped into `0.0..=1.0` (NaN becomes 0).
    pub fn sanitized(&self) -> Self {
        fn clamp(x: f64) -> f64 {
            if x.is_nan() {
                0.0
            } else {
                x.clamp(0.0, 1.0)
            }
        }
        Self {
            fail_rate: clamp(self.fail_rate),
            rate_limit_rate: clamp(self.rate_limit_rate),
            retry_after_secs: self.retry_after_secs,
            drop_rate: clamp(self.drop_rate),
            hang_rate: clamp(self.hang_rate),
            fail_first_n: self.fail_first_n,
        }
    }

    /// True when no fault can be injected (no RNG draw is needed).
    pub(crate) fn no_random_faults(&self) -> bool {
        self.fail_rate <= 0.0
            && self.rate_limit_rate <= 0.0
            && self.drop_rate <= 0.0
            && self.hang_rate <= 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_clamps_and_removes_nan() {
        let f = Faults {
            fail_rate: f64::NAN,
            rate_limit_rate: 2.0,
            drop_rate: -1.0,
            ..Faults::default()
        }
        .sanitized();
        assert_eq!(f.fail_rate, 0.0);
        assert_eq!(f.rate_limit_rate, 1.0);
        assert_eq!(f.drop_rate, 0.0);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn partial_json_takes_defaults() {
        let f: Faults = serde_json::from_str(r#"{"fail_rate":0.5}"#).unwrap();
        assert_eq!(f.fail_rate, 0.5);
        assert_eq!(f.retry_after_secs, 1);
    }
}
