//! The single error type of this crate.

use crate::Kind;

/// Why an ID could not be encoded or decoded.
///
/// Every decode failure means the same thing to a client: the object does
/// not exist. The HTTP layer maps *all* of them to `404 No such file/batch`
/// and never routes the request anywhere; the variants only exist so logs
/// and tests can tell the causes apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Encode only: the ID would be longer than [`crate::MAX_ID_LEN`]
    /// characters. Happens for upstream IDs that are too long to embed; the
    /// caller should store an alias (local id → upstream id) and encode an
    /// [`crate::Inner::Local`] id instead.
    #[error("encoded id would exceed {} characters", crate::MAX_ID_LEN)]
    TooLong,
    /// Encode only: an [`crate::Inner::Upstream`] id was the empty string.
    #[error("upstream id is empty")]
    EmptyUpstream,
    /// Decode: the string carries the prefix of the other kind
    /// (e.g. a batch id passed where a file id was expected).
    #[error("expected a {expected} id, got a {found} id")]
    WrongKind {
        /// The kind the caller asked for.
        expected: Kind,
        /// The kind the prefix says.
        found: Kind,
    },
    /// Decode: the string does not start with the expected prefix.
    #[error("id does not start with the {0} prefix")]
    WrongPrefix(Kind),
    /// Decode: too long, or the body is not canonical unpadded URL-safe base64.
    #[error("id is not validly encoded")]
    BadEncoding,
    /// Decode: the payload is shorter than the smallest valid payload.
    #[error("id is truncated")]
    Truncated,
    /// Decode: the version byte is not one this build understands.
    #[error("unsupported id format version {0}")]
    UnsupportedVersion(u8),
    /// Decode: the MAC does not match — forged, edited, or minted with a
    /// different secret.
    #[error("id failed authentication")]
    BadMac,
    /// Decode: authentic MAC but the inner section is malformed (unknown
    /// inner tag, wrong length, non-UTF-8 upstream id). Only reachable by a
    /// holder of the secret, i.e. a bug or a newer gateway's format.
    #[error("malformed id payload: {0}")]
    Malformed(&'static str),
}
