//! How the engine reaches a vLLM server: OpenAI's HTTP API, probed on
//! vLLM's own `/health` route, reported as `gen_ai.system = "vllm"`.

use std::sync::Arc;

use batchgate_core::{ApiError, Deployment, Upstream};
use batchgate_engine::{Assembly, Parts};
use batchgate_provider_openai::OpenAiCompatProvider;

use crate::FLAVOR;

/// The upstream of one vLLM deployment.
pub fn upstream(http: &reqwest::Client, d: &Arc<Deployment>) -> Arc<dyn Upstream> {
    FLAVOR.upstream(http, d)
}

/// A gateway whose every deployment is a vLLM server, and the provider
/// serving it (for embedding and tests; the binary registers every
/// provider). `instance` names this process in batch leases.
pub fn assemble(
    parts: Parts,
    instance: &str,
) -> Result<(Assembly, OpenAiCompatProvider), ApiError> {
    let http = batchgate_upstream_openai::client()
        .map_err(|e| ApiError::internal(format!("cannot build the HTTP client: {e}")))?;
    let gateway = Assembly::new(parts, instance.to_string(), |d| Ok(upstream(&http, d)))?;
    let provider = crate::provider(&gateway);
    Ok((gateway, provider))
}
