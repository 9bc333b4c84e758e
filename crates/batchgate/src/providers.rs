//! Where providers are registered: adding one is one line in [`FLAVORS`].

use std::sync::Arc;

use batchgate_core::{ApiError, Deployment, Upstream};
use batchgate_engine::Assembly;
use batchgate_provider_openai::Flavor;
use batchgate_server::Providers;

/// Every provider, by the servers it speaks to.
const FLAVORS: &[Flavor] = &[
    batchgate_provider_vllm::FLAVOR,
    batchgate_provider_openai::OPENAI,
];

/// Provider prefixes the config may name in `litellm_params.model`.
pub fn names() -> Vec<&'static str> {
    FLAVORS.iter().map(|f| f.name).collect()
}

/// How the engine reaches deployment `d`, by its provider.
pub fn connect(http: &reqwest::Client, d: &Arc<Deployment>) -> Result<Arc<dyn Upstream>, ApiError> {
    let flavor = FLAVORS
        .iter()
        .find(|f| f.name == d.provider)
        .ok_or_else(|| {
            ApiError::internal(format!("no provider registered for \"{}\"", d.provider))
        })?;
    Ok(flavor.upstream(http, d))
}

/// Every provider, sharing the gateway's catalog and engine.
pub fn register(gateway: &Assembly) -> Providers {
    let (catalog, engine) = (gateway.catalog(), gateway.engine());
    FLAVORS.iter().fold(Providers::new(), |p, f| {
        p.register(f.provider(catalog, engine))
    })
}
