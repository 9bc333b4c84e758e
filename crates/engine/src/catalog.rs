//! The catalog: which files and batches exist (metadata), their bytes
//! (blobs), how their public IDs route, and who may see them.

use std::sync::Arc;
use std::time::Duration;

use batchgate_config::GeneralSettings;
use batchgate_core::{ApiError, Caller, ObjectRef};
use batchgate_ids::Kind;
use batchgate_store::{BatchStore, Blobs, FileStore, MetaStore, Owner, StoreError};

use crate::{Background, Clock, Ids};

/// How often expired files are removed.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Expired rows taken per store call while sweeping.
const SWEEP_CHUNK: u32 = 500;

/// Metadata, blobs, IDs and visibility. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    pub(crate) store: Arc<dyn MetaStore>,
    pub(crate) blobs: Blobs,
    pub(crate) ids: Ids,
    pub(crate) general: Arc<GeneralSettings>,
    pub(crate) clock: Clock,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("store", &self.store)
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// `general` gives the file limits (size, default expiry) uploads obey.
    pub fn new(
        store: Arc<dyn MetaStore>,
        blobs: Blobs,
        ids: Ids,
        general: Arc<GeneralSettings>,
        clock: Clock,
    ) -> Catalog {
        Catalog {
            store,
            blobs,
            ids,
            general,
            clock,
        }
    }

    pub fn ids(&self) -> &Ids {
        &self.ids
    }

    /// Decodes and routes a public ID ("not found" for anything else).
    pub fn route(&self, kind: Kind, public_id: &str) -> Result<ObjectRef, ApiError> {
        self.ids.route(kind, public_id)
    }

    /// File limits and defaults.
    pub fn general(&self) -> &GeneralSettings {
        &self.general
    }

    /// Unix seconds now, by the catalog's clock (expiry is judged by it).
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// File rows.
    pub fn files(&self) -> &dyn FileStore {
        &*self.store
    }

    /// Batch rows.
    pub fn batches(&self) -> &dyn BatchStore {
        &*self.store
    }

    /// Whether the metadata store answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
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

    /// Deletes files whose expiry passed, rows first so they vanish from the
    /// API at once, then their bytes. Returns how many were removed.
    pub async fn sweep_expired(&self) -> Result<usize, ApiError> {
        let mut removed = 0;
        loop {
            let expired = self
                .store
                .take_expired_files(self.now(), SWEEP_CHUNK)
                .await?;
            if expired.is_empty() {
                return Ok(removed);
            }
            removed += expired.len();
            for file in expired {
                if let Some(path) = file.blob_path {
                    if let Err(e) = self.blobs.delete(&path).await {
                        tracing::warn!(error = %e, path, "could not remove an expired file's bytes");
                    }
                }
            }
        }
    }

    /// Sweeps expired files every minute until the handle is dropped.
    pub fn start_expiry_sweep(&self) -> Background {
        let catalog = self.clone();
        Background::every(SWEEP_EVERY, move || {
            let catalog = catalog.clone();
            async move {
                match catalog.sweep_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "expired files removed"),
                    Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
                }
            }
        })
    }
}
