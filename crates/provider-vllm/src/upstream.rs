//! How the engine reaches a vLLM server: OpenAI's HTTP API, probed on
//! vLLM's own `/health` route, reported as `gen_ai.system = "vllm"`.

use std::sync::Arc;

use batchgate_config::Router;
use batchgate_core::{ApiError, Deployment, Upstream};
use batchgate_engine::Upstreams;

use crate::FLAVOR;

/// The upstream of one vLLM deployment.
pub fn upstream(http: &reqwest::Client, d: &Arc<Deployment>) -> Arc<dyn Upstream> {
    FLAVOR.upstream(http, d)
}

/// Every deployment of `router`, reached as vLLM servers (for embedding
/// and tests, where every deployment is one).
pub fn upstreams(router: &Router) -> Result<Upstreams, ApiError> {
    let http = batchgate_upstream_openai::client()
        .map_err(|e| ApiError::internal(format!("cannot build the HTTP client: {e}")))?;
    Upstreams::connect(router, |d| Ok(upstream(&http, d)))
}
