//! [`IdCodec`]: routing info in, opaque tamper-evident ID out (and back).
//!
//! Payload layout (see `docs/ids.md` for the rationale):
//!
//! ```text
//! version(1) | deployment tag(4) | inner tag(1) | inner body(0..) | MAC(10)
//! ```
//!
//! The ID is `kind.prefix()` followed by the unpadded URL-safe base64 of the
//! payload. The MAC is HMAC-SHA256, keyed with the gateway secret, over
//! `MAC_DOMAIN | prefix | payload-before-MAC`, truncated to its first 10 bytes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::{hex, DeploymentTag, IdError, Inner, Kind};

type HmacSha256 = Hmac<Sha256>;

/// No gateway-owned ID is longer than this many characters.
pub const MAX_ID_LEN: usize = 64;
/// The payload format version this build writes (and the only one it reads).
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of HMAC-SHA256 kept in an ID.
pub const MAC_LEN: usize = 10;
/// version + deployment tag.
const HEADER_LEN: usize = 1 + 4;
/// Header + inner tag + MAC; the inner body may add more.
const MIN_PAYLOAD_LEN: usize = HEADER_LEN + 1 + MAC_LEN;
/// Domain separation, so the secret can never be confused with another use.
const MAC_DOMAIN: &[u8] = b"batchgate-ids\0";

/// Everything an ID says: what kind of object, which deployment it lives on,
/// and what it is called there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutedId {
    /// File or batch; decides the prefix.
    pub kind: Kind,
    /// The deployment (upstream) that owns the object.
    pub deployment: DeploymentTag,
    /// The object's name on that deployment.
    pub inner: Inner,
}

impl RoutedId {
    /// Plain constructor.
    pub fn new(kind: Kind, deployment: DeploymentTag, inner: Inner) -> RoutedId {
        RoutedId {
            kind,
            deployment,
            inner,
        }
    }

    /// A new gateway-owned object with a fresh random [`Inner::Local`] id.
    pub fn new_local(kind: Kind, deployment: DeploymentTag) -> RoutedId {
        RoutedId::new(kind, deployment, Inner::random_local())
    }

    /// A stable string to use as the store's primary key for this object:
    ///
    /// * `Inner::Local(b)` → 24 lowercase hex characters of `b`
    ///   (e.g. `00112233445566778899aabb`);
    /// * `Inner::Upstream(id)` → `"u:"` followed by `id` verbatim.
    ///
    /// The two forms never collide (hex has no `:`). The key deliberately
    /// does not include the kind or the deployment tag: local ids are random
    /// and globally unique, and upstream IDs are assumed unique per
    /// provider. It depends only on `inner`, not on the secret or the
    /// encoded form, so it survives secret rotation and format versions.
    pub fn local_key(&self) -> String {
        match &self.inner {
            Inner::Local(bytes) => hex::encode(bytes),
            Inner::Upstream(id) => format!("u:{id}"),
        }
    }
}

/// Encodes and decodes [`RoutedId`]s, authenticating them with a secret.
///
/// ```
/// use batchgate_ids::{DeploymentTag, IdCodec, IdError, Inner, Kind, RoutedId};
///
/// let codec = IdCodec::new(b"a secret of at least 32 bytes, please");
/// let id = RoutedId::new(
///     Kind::Batch,
///     DeploymentTag::of("vllm:llama@pool-a"),
///     Inner::Upstream("batch_0123456789abcdef0123456789abcdef".into()),
/// );
/// let s = codec.encode(&id)?;
/// assert!(s.starts_with("batch_") && s.len() <= 64);
/// assert_eq!(codec.decode(Kind::Batch, &s)?, id);
///
/// // Forged, edited, wrong-kind or foreign-secret IDs never decode.
/// assert!(codec.decode(Kind::File, &s).is_err());
/// assert!(IdCodec::new(b"another secret").decode(Kind::Batch, &s).is_err());
/// # Ok::<(), IdError>(())
/// ```
#[derive(Clone)]
pub struct IdCodec {
    /// HMAC state already keyed with the secret; cloned per operation.
    mac: HmacSha256,
}

impl std::fmt::Debug for IdCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdCodec { secret: <redacted> }")
    }
}

impl IdCodec {
    /// A codec keyed with `secret` (any length; use ≥ 32 random bytes).
    ///
    /// IDs minted under one secret do not decode under another: rotating
    /// the secret invalidates every outstanding ID.
    pub fn new(secret: &[u8]) -> IdCodec {
        IdCodec {
            mac: hmac_from_secret(secret),
        }
    }

    /// Encode `id` as `prefix + base64url(payload)`.
    ///
    /// # Errors
    /// * [`IdError::TooLong`] if the result would exceed [`MAX_ID_LEN`]
    ///   characters (only possible for long [`Inner::Upstream`] ids; the
    ///   caller should then store an alias and encode an [`Inner::Local`]);
    /// * [`IdError::EmptyUpstream`] for `Inner::Upstream("")`.
    pub fn encode(&self, id: &RoutedId) -> Result<String, IdError> {
        let prefix = id.kind.prefix();
        let mut payload = Vec::with_capacity(48);
        payload.push(FORMAT_VERSION);
        payload.extend_from_slice(id.deployment.as_bytes());
        id.inner.write(&mut payload)?;
        if prefix.len() + b64_len(payload.len() + MAC_LEN) > MAX_ID_LEN {
            return Err(IdError::TooLong);
        }
        let tag = self.mac_over(prefix, &payload).finalize().into_bytes();
        payload.extend_from_slice(&tag[..MAC_LEN]); // 32-byte output
        let mut out = String::with_capacity(MAX_ID_LEN);
        out.push_str(prefix);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        Ok(out)
    }

    /// Decode and authenticate `s`, which must be an ID of kind `expected`.
    ///
    /// Never panics, whatever `s` is. Every error means "no such object":
    /// callers must answer 404 and must not route the request.
    pub fn decode(&self, expected: Kind, s: &str) -> Result<RoutedId, IdError> {
        let Some(body) = s.strip_prefix(expected.prefix()) else {
            return Err(match Kind::of_prefixed(s) {
                Some(found) => IdError::WrongKind { expected, found },
                None => IdError::WrongPrefix(expected),
            });
        };
        if s.len() > MAX_ID_LEN {
            return Err(IdError::BadEncoding);
        }
        // Rejects padding, non-alphabet bytes and non-zero trailing bits, so
        // each payload has exactly one textual form.
        let payload = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| IdError::BadEncoding)?;
        let Some((&version, _)) = payload.split_first() else {
            return Err(IdError::Truncated);
        };
        if version != FORMAT_VERSION {
            return Err(IdError::UnsupportedVersion(version));
        }
        if payload.len() < MIN_PAYLOAD_LEN {
            return Err(IdError::Truncated);
        }
        let (signed, tag) = payload.split_at(payload.len() - MAC_LEN);
        // Constant-time comparison of the leftmost MAC_LEN bytes.
        self.mac_over(expected.prefix(), signed)
            .verify_truncated_left(tag)
            .map_err(|_| IdError::BadMac)?;
        // Authentic from here on: only a holder of the secret wrote this.
        let (header, inner) = signed.split_at(HEADER_LEN);
        let mut deployment = [0u8; 4];
        deployment.copy_from_slice(&header[1..]); // HEADER_LEN = 1 + 4
        Ok(RoutedId {
            kind: expected,
            deployment: DeploymentTag(deployment),
            inner: Inner::read(inner)?,
        })
    }

    fn mac_over(&self, prefix: &str, signed: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(MAC_DOMAIN);
        mac.update(prefix.as_bytes());
        mac.update(signed);
        mac
    }
}

/// Length of unpadded base64 for `n` bytes.
const fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// HMAC-SHA256 keyed with `secret`, built infallibly: RFC 2104 hashes keys
/// longer than the block size and zero-pads the rest, which is exactly
/// what `new_from_slice` does internally (checked by a test).
fn hmac_from_secret(secret: &[u8]) -> HmacSha256 {
    let mut key = hmac::digest::Key::<HmacSha256>::default();
    if secret.len() > key.len() {
        let digest = Sha256::digest(secret);
        key[..digest.len()].copy_from_slice(&digest);
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    <HmacSha256 as hmac::digest::KeyInit>::new(&key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn infallible_key_setup_matches_rfc2104() {
        for len in [0usize, 1, 32, 63, 64, 65, 200] {
            let secret: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let ours = hmac_from_secret(&secret)
                .chain_update(b"msg")
                .finalize()
                .into_bytes();
            let reference = <HmacSha256 as Mac>::new_from_slice(&secret)
                .unwrap()
                .chain_update(b"msg")
                .finalize()
                .into_bytes();
            assert_eq!(ours, reference, "key length {len}");
        }
    }

    #[test]
    fn b64_len_matches_engine() {
        for n in 0..64 {
            assert_eq!(b64_len(n), URL_SAFE_NO_PAD.encode(vec![0u8; n]).len());
        }
    }

    #[test]
    fn local_key_forms() {
        let tag = DeploymentTag([1, 2, 3, 4]);
        let local = RoutedId::new(Kind::File, tag, Inner::Local([0xab; 12]));
        assert_eq!(local.local_key(), "abababababababababababab");
        let up = RoutedId::new(Kind::Batch, tag, Inner::Upstream("batch_xyz".into()));
        assert_eq!(up.local_key(), "u:batch_xyz");
    }

    proptest::proptest! {
        /// The decoder past the MAC check (unreachable by fuzzing without
        /// the secret): any authentic payload either decodes or errors.
        #[test]
        fn authentic_arbitrary_payloads_never_panic(
            kind in proptest::prop_oneof![proptest::strategy::Just(Kind::File), proptest::strategy::Just(Kind::Batch)],
            body in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..40),
        ) {
            let codec = IdCodec::new(b"k");
            let mut payload = vec![FORMAT_VERSION];
            payload.extend_from_slice(&body);
            let tag = codec.mac_over(kind.prefix(), &payload).finalize().into_bytes();
            payload.extend_from_slice(&tag[..MAC_LEN]);
            let s = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(&payload));
            if let Ok(id) = codec.decode(kind, &s) {
                // Whatever decodes re-encodes to a valid id of the same meaning.
                let again = codec.encode(&id).unwrap();
                proptest::prop_assert_eq!(codec.decode(kind, &again).unwrap(), id);
            }
        }
    }

    #[test]
    fn debug_redacts_secret() {
        assert_eq!(
            format!("{:?}", IdCodec::new(b"hunter2")),
            "IdCodec { secret: <redacted> }"
        );
    }
}
