//! Public IDs and where they lead: the codec that seals them and the router
//! that knows the deployment each one names.

use std::sync::Arc;

use batchgate_config::Router;
use batchgate_core::{ApiError, Deployment, ObjectRef};
use batchgate_ids::{IdCodec, IdError, Inner, Kind, RoutedId};

/// The ID service: mints, seals and routes public file and batch IDs. Cheap
/// to clone.
#[derive(Clone)]
pub struct Ids {
    codec: Arc<IdCodec>,
    router: Arc<Router>,
}

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ids")
            .field("models", &self.router.model_names())
            .finish_non_exhaustive()
    }
}

impl Ids {
    pub fn new(codec: IdCodec, router: Router) -> Ids {
        Ids {
            codec: Arc::new(codec),
            router: Arc::new(router),
        }
    }

    /// The configured deployments, by model name and tag.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Seals `id` into its public form.
    pub fn encode(&self, id: &RoutedId) -> Result<String, IdError> {
        self.codec.encode(id)
    }

    /// A fresh gateway-owned ID for an object living on `deployment`:
    /// `(public id, store key)`.
    pub fn new_local(
        &self,
        kind: Kind,
        deployment: &Deployment,
    ) -> Result<(String, String), ApiError> {
        let id = RoutedId::new(kind, Router::tag_of(deployment), Inner::random_local());
        let public = self.codec.encode(&id).map_err(|e| {
            tracing::error!(error = %e, "cannot encode a local id");
            ApiError::internal("could not allocate an id")
        })?;
        Ok((public, id.local_key()))
    }

    /// Decodes and routes a public ID. Anything that does not decode, or
    /// pins a deployment no longer configured, is "not found".
    pub fn route(&self, kind: Kind, public_id: &str) -> Result<ObjectRef, ApiError> {
        let object = match kind {
            Kind::File => "file",
            Kind::Batch => "batch",
        };
        let not_found = || ApiError::not_found(object, public_id);
        let id = self
            .codec
            .decode(kind, public_id)
            .map_err(|_| not_found())?;
        let deployment = self.router.by_tag(&id.deployment).ok_or_else(not_found)?;
        let upstream_id = match &id.inner {
            Inner::Upstream(u) => Some(u.clone()),
            Inner::Local(_) => None,
        };
        Ok(ObjectRef {
            public_id: public_id.to_string(),
            local_key: id.local_key(),
            upstream_id,
            deployment,
        })
    }
}
