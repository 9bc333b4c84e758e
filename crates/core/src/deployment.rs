//! What a provider adapter needs to know about one upstream deployment.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Whether a deployment's batches run in the gateway or on the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchApiMode {
    /// The gateway's engine runs every line against the upstream.
    Gateway,
    /// Files and batches are forwarded to the upstream's own API.
    Upstream,
    /// Probe the upstream once; forward if it has a batch API, else `Gateway`.
    #[default]
    Auto,
}

/// One configured upstream (one `model_list[]` entry). Several deployments may
/// share a `model_name`: they are replicas of one model group.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// Stable identity (`model_info.id`, else derived from name, model and
    /// api_base); IDs pin a deployment by it, so it survives reordering.
    pub id: String,
    /// The public model name clients use (`model_name`).
    pub model_name: String,
    /// Provider prefix of `litellm_params.model`, e.g. `hosted_vllm`.
    pub provider: String,
    /// The name the upstream serves (`litellm_params.model` after the prefix).
    pub served_model: String,
    /// Base URL without a trailing `/v1` or `/`.
    pub api_base: String,
    pub api_key: Option<String>,
    /// Upper bound on concurrent requests the gateway sends this deployment:
    /// the ceiling of the adaptive limit, or the fixed limit.
    pub max_parallel_requests: usize,
    /// Whether the engine sizes its concurrency to the server (up to
    /// `max_parallel_requests`) instead of using `max_parallel_requests`.
    pub adaptive_concurrency: bool,
    /// The `priority` sent with every batch line to this deployment (for
    /// servers that schedule by it, e.g. vLLM's `--scheduling-policy
    /// priority`, where lower runs first); `None` sends none.
    pub batch_priority: Option<i64>,
    /// Per-request timeout towards the upstream.
    pub timeout: Duration,
    pub batch_api: BatchApiMode,
    /// Endpoints this deployment serves, e.g. `/v1/chat/completions`.
    pub endpoints: Vec<String>,
    /// Every other `litellm_params` key, kept for later use.
    pub extra_params: BTreeMap<String, serde_json::Value>,
    /// `model_info` as written (prices live here).
    pub model_info: BTreeMap<String, serde_json::Value>,
}

impl Deployment {
    /// `api_base` + `/v1` + `path` (path starts with `/`, without `/v1`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/v1{}", self.api_base, path)
    }

    /// Whether this deployment serves the given batch endpoint.
    pub fn serves(&self, endpoint: &str) -> bool {
        self.endpoints.iter().any(|e| e == endpoint)
    }
}
