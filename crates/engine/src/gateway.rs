//! What the engine's own parts share: the catalog's pieces, the accounts,
//! the batch settings. Private to the engine; other crates get the narrow
//! handles ([`crate::Catalog`], [`crate::Ids`], [`crate::Accounts`]).

use std::sync::Arc;

use batchgate_config::BatchSettings;
use batchgate_core::{ApiError, Deployment, ObjectRef};
use batchgate_ids::Kind;
use batchgate_store::{Blobs, MetaStore};

use crate::{Accounts, Catalog, Clock, Ids};

#[derive(Clone)]
pub(crate) struct Gateway {
    pub store: Arc<dyn MetaStore>,
    pub blobs: Blobs,
    pub ids: Ids,
    pub batch: Arc<BatchSettings>,
    pub clock: Clock,
    pub accounts: Accounts,
    pub catalog: Catalog,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn new(catalog: &Catalog, accounts: &Accounts, batch: Arc<BatchSettings>) -> Gateway {
        Gateway {
            store: catalog.store.clone(),
            blobs: catalog.blobs.clone(),
            ids: catalog.ids.clone(),
            batch,
            clock: catalog.clock.clone(),
            accounts: accounts.clone(),
            catalog: catalog.clone(),
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    pub fn new_local_id(
        &self,
        kind: Kind,
        deployment: &Deployment,
    ) -> Result<(String, String), ApiError> {
        self.ids.new_local(kind, deployment)
    }

    pub fn route(&self, kind: Kind, public_id: &str) -> Result<ObjectRef, ApiError> {
        self.ids.route(kind, public_id)
    }
}
