//! The upstream of every configured deployment, made once at start-up by
//! the wiring (each provider knows how to reach its servers; the engine
//! only talks to the [`Upstream`] trait).

use std::collections::HashMap;
use std::sync::Arc;

use batchgate_config::Router;
use batchgate_core::{ApiError, Deployment, Upstream};

/// Deployment id → its upstream.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    by_deployment: HashMap<String, Arc<dyn Upstream>>,
}

impl Upstreams {
    /// Connects every deployment of `router` with `connect` (which fails
    /// for a deployment whose provider it does not know).
    pub fn connect(
        router: &Router,
        connect: impl Fn(&Arc<Deployment>) -> Result<Arc<dyn Upstream>, ApiError>,
    ) -> Result<Upstreams, ApiError> {
        let mut by_deployment = HashMap::new();
        for d in router.deployments() {
            by_deployment.insert(d.id.clone(), connect(d)?);
        }
        Ok(Upstreams { by_deployment })
    }

    /// The upstream of deployment `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn Upstream>> {
        self.by_deployment.get(id)
    }
}
