//! The one way the gateway's handles are wired together, shared by the
//! binary, the embedded library and in-process tests so none repeats it.

use std::sync::Arc;

use batchgate_config::{BatchSettings, GeneralSettings, Router};
use batchgate_core::{ApiError, Deployment, Upstream};
use batchgate_ids::IdCodec;
use batchgate_store::{Blobs, MetaStore};

use crate::{Accounts, Background, Catalog, Clock, Engine, Ids, LocalFiles, Upstreams};

/// What a gateway is built from: where metadata and bytes live, the ID
/// secret, the configuration and the clock.
pub struct Parts {
    pub store: Arc<dyn MetaStore>,
    pub blobs: Blobs,
    /// Seals every public ID: the same on every instance sharing a store.
    pub id_secret: Vec<u8>,
    pub deployments: Vec<Deployment>,
    pub general: GeneralSettings,
    pub batch: BatchSettings,
    pub clock: Clock,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Every handle of one gateway, wired. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Assembly {
    catalog: Catalog,
    accounts: Accounts,
    files: LocalFiles,
    engine: Engine,
}

/// The background work of an [`Assembly`]; dropping it stops all of it.
#[derive(Debug)]
#[must_use = "background work stops when this is dropped"]
pub struct Running {
    _tasks: [Background; 3],
}

impl Assembly {
    /// Wires `parts`; `connect` reaches each deployment's upstream (the
    /// provider registry decides how) and `instance` names this process in
    /// batch leases (see [`Engine::new`]).
    pub fn new(
        parts: Parts,
        instance: String,
        connect: impl Fn(&Arc<Deployment>) -> Result<Arc<dyn Upstream>, ApiError>,
    ) -> Result<Assembly, ApiError> {
        let router = Router::new(parts.deployments);
        let upstreams = Upstreams::connect(&router, connect)?;
        let ids = Ids::new(IdCodec::new(&parts.id_secret), router);
        let catalog = Catalog::new(
            parts.store.clone(),
            parts.blobs,
            ids,
            Arc::new(parts.general),
            parts.clock.clone(),
        );
        let accounts = Accounts::new(parts.store, parts.clock);
        let engine = Engine::new(
            &catalog,
            &accounts,
            Arc::new(parts.batch),
            instance,
            upstreams,
        )?;
        Ok(Assembly {
            files: LocalFiles::new(catalog.clone()),
            catalog,
            accounts,
            engine,
        })
    }

    /// Starts the background work: the engine's supervisor (which resumes
    /// unfinished batches), the expiry sweep and budget resets.
    pub fn start(&self) -> Running {
        Running {
            _tasks: [
                self.engine.start(),
                self.catalog.start_expiry_sweep(),
                self.accounts.start_budget_resets(),
            ],
        }
    }

    pub fn ids(&self) -> &Ids {
        self.catalog.ids()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The Files API over the catalog.
    pub fn files(&self) -> &LocalFiles {
        &self.files
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
