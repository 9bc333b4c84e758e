//! The batchgate ID codec: routing info in, opaque tamper-evident ID out.
//!
//! Every file and batch ID the gateway hands out is `file-…` / `batch_…`
//! followed by unpadded URL-safe base64 of a small binary payload: a format
//! version byte, a 4-byte [`DeploymentTag`] saying which deployment owns the
//! object, the object's [`Inner`] id there (a random gateway-owned id or the
//! upstream provider's own ID), and a 10-byte truncated HMAC-SHA256 keyed
//! with the gateway secret. Requests are routed from the ID alone; an ID
//! that fails to decode — edited, forged, foreign secret, wrong kind — is
//! answered with 404 and never routed. IDs are at most [`MAX_ID_LEN`] (64)
//! characters. See `docs/ids.md` for the byte layout and its rationale.
//!
//! Start at [`IdCodec`]; [`secret::load_or_generate`] supplies a secret.

mod codec;
mod error;
mod hex;
mod inner;
mod kind;
mod random;
pub mod secret;
mod tag;

pub use codec::{IdCodec, RoutedId, FORMAT_VERSION, MAC_LEN, MAX_ID_LEN};
pub use error::IdError;
pub use inner::{Inner, LOCAL_LEN};
pub use kind::Kind;
pub use random::{batch_request_id, request_id};
pub use tag::DeploymentTag;
