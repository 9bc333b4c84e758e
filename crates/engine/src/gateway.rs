//! The parts every gateway-side service shares.

use std::sync::Arc;

use batchgate_config::{BatchSettings, GeneralSettings, Router};
use batchgate_core::{ApiError, Caller, Deployment, ObjectRef};
use batchgate_cost::{first_overspent, Budget, Overspent};
use batchgate_ids::{IdCodec, Inner, Kind, RoutedId};
use batchgate_store::{Blobs, MetaStore, Owner, StoreError};

use crate::Clock;

/// Store, blobs, codec, router, settings and clock, cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    pub store: Arc<dyn MetaStore>,
    pub blobs: Blobs,
    pub codec: Arc<IdCodec>,
    pub router: Arc<Router>,
    pub general: Arc<GeneralSettings>,
    pub batch: Arc<BatchSettings>,
    pub clock: Clock,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Whether a key or its team (the key named first) has spent its
    /// budget: the one rule both the API (no new work) and running batches
    /// (stop, under `on_budget_exceeded: stop`) apply.
    pub async fn overspent(
        &self,
        key_id: Option<&str>,
        team_id: Option<&str>,
    ) -> Result<Option<Overspent>, StoreError> {
        let mut budgets = Vec::new();
        if let Some(id) = key_id {
            if let Some(k) = self.store.key_by_id(id).await? {
                let budget = Budget {
                    spend: k.spend,
                    max: k.max_budget,
                };
                budgets.push((format!("key {id}"), budget));
            }
        }
        if let Some(id) = team_id {
            if let Some(t) = self.store.team(id).await? {
                let budget = Budget {
                    spend: t.spend,
                    max: t.max_budget,
                };
                budgets.push((format!("team {id}"), budget));
            }
        }
        Ok(first_overspent(budgets))
    }

    /// A fresh gateway-owned ID for an object living on `deployment`:
    /// `(public id, store key)`.
    pub fn new_local_id(
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

    /// "Not found" unless `caller` may see an object owned by `owner`: other
    /// tenants must not learn that an ID exists.
    pub fn check_visible(
        &self,
        owner: &Owner,
        caller: &Caller,
        object: &str,
        id: &str,
    ) -> Result<(), ApiError> {
        if owner.visible_to(caller) {
            Ok(())
        } else {
            Err(ApiError::not_found(object, id))
        }
    }
}
