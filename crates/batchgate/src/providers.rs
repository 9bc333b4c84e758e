//! Where providers are registered: adding one is one line in each list.

use std::sync::Arc;

use batchgate_core::{ApiError, Deployment, Upstream};
use batchgate_engine::{Engine, Gateway};
use batchgate_provider_vllm::VllmProvider;
use batchgate_server::Providers;

/// Provider prefixes the config may name in `litellm_params.model`.
pub const NAMES: &[&str] = &[VllmProvider::NAME];

/// How the engine reaches deployment `d`, by its provider.
pub fn connect(http: &reqwest::Client, d: &Arc<Deployment>) -> Result<Arc<dyn Upstream>, ApiError> {
    match d.provider.as_str() {
        VllmProvider::NAME => Ok(batchgate_provider_vllm::upstream(http, d)),
        other => Err(ApiError::internal(format!(
            "no upstream for provider \"{other}\""
        ))),
    }
}

/// Every provider, sharing the gateway's store and engine.
pub fn register(gw: &Gateway, engine: &Engine) -> Providers {
    Providers::new().register(Arc::new(VllmProvider::new(gw.clone(), engine.clone())))
}
