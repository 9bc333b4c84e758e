//! Where providers are registered: adding one is one line in each list.

use std::sync::Arc;

use batchgate_engine::{Engine, Gateway};
use batchgate_provider_vllm::VllmProvider;
use batchgate_server::Providers;

/// Provider prefixes the config may name in `litellm_params.model`.
pub const NAMES: &[&str] = &[VllmProvider::NAME];

/// Every provider, sharing the gateway's store and engine.
pub fn register(gw: &Gateway, engine: &Engine) -> Providers {
    Providers::new().register(Arc::new(VllmProvider::new(gw.clone(), engine.clone())))
}
