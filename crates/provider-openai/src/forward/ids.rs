//! Upstream IDs in, gateway IDs out — and back.

use batchgate_config::Router;
use batchgate_core::{ApiError, Deployment};
use batchgate_engine::Catalog;
use batchgate_ids::{IdError, Inner, Kind, RoutedId};
use sha2::{Digest, Sha256};

/// The gateway ID `(public id, store key)` of an upstream object. The
/// upstream ID rides inside the gateway ID when it fits in 64 characters;
/// otherwise the gateway ID is derived from it deterministically (so the
/// same upstream object always gets the same gateway ID) and the store's
/// row maps it back.
pub fn encode(
    catalog: &Catalog,
    kind: Kind,
    deployment: &Deployment,
    upstream_id: &str,
) -> Result<(String, String), ApiError> {
    let tag = Router::tag_of(deployment);
    let inline = RoutedId::new(kind, tag, Inner::Upstream(upstream_id.to_string()));
    let id = match catalog.ids().encode(&inline) {
        Ok(public) => return Ok((public, inline.local_key())),
        Err(IdError::TooLong) => {
            let digest = Sha256::digest(
                format!("{}\n{}\n{upstream_id}", deployment.id, kind.name()).as_bytes(),
            );
            let mut local = [0u8; 12];
            local.copy_from_slice(&digest[..12]);
            RoutedId::new(kind, tag, Inner::Local(local))
        }
        Err(e) => {
            tracing::warn!(error = %e, upstream_id, "unusable upstream id");
            return Err(ApiError::bad_gateway(format!(
                "The upstream returned an unusable {} id.",
                kind.name()
            )));
        }
    };
    let public = catalog
        .ids()
        .encode(&id)
        .map_err(|_| ApiError::internal("could not encode an id"))?;
    Ok((public, id.local_key()))
}
