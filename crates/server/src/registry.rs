//! Provider adapters by name. Registering a provider is one line where the
//! binary builds this.

use std::collections::BTreeMap;
use std::sync::Arc;

use batchgate_core::{ApiError, Deployment, Provider};

/// The registered providers, keyed by `litellm_params.model` prefix.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<&'static str, Arc<dyn Provider>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Providers {
    pub fn new() -> Providers {
        Providers::default()
    }

    /// Adds a provider under its own name.
    pub fn register(mut self, provider: Arc<dyn Provider>) -> Providers {
        self.by_name.insert(provider.name(), provider);
        self
    }

    /// The provider that serves `deployment`.
    pub fn for_deployment(&self, deployment: &Deployment) -> Result<Arc<dyn Provider>, ApiError> {
        self.by_name
            .get(deployment.provider.as_str())
            .cloned()
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "no provider registered for \"{}\"",
                    deployment.provider
                ))
            })
    }
}
