//! The inner-id section: what the object is called on its home.
//!
//! Wire form (after the deployment tag, before the MAC): one *inner tag*
//! byte, then a body whose meaning the tag decides.
//!
//! | inner tag            | body                                   | decodes to                         |
//! |----------------------|----------------------------------------|------------------------------------|
//! | `0x00`               | exactly 12 random bytes                | `Inner::Local`                     |
//! | `0x01`               | ≥ 1 byte of UTF-8                      | `Inner::Upstream(body)`            |
//! | `0x10 + i`           | ≥ 1 raw byte                           | `Inner::Upstream(PREFIXES[i] + hex(body))` |
//!
//! The `0x10 + i` forms compress the common `<prefix><lowercase hex>` shape of
//! provider IDs (e.g. `batch_` + 32 hex → 1 + 16 bytes instead of 38).

use rand::RngCore;

use crate::{hex, IdError};

/// Number of random bytes in a gateway-owned (local) object id.
pub const LOCAL_LEN: usize = 12;

const TAG_LOCAL: u8 = 0x00;
const TAG_UPSTREAM_RAW: u8 = 0x01;
const TAG_UPSTREAM_HEX_BASE: u8 = 0x10;

/// Prefixes known to precede lowercase hex in upstream IDs. Index `i` is
/// stored as inner tag `0x10 + i`. Append only: existing indices are part of
/// the format. New entries must be decodable by every running gateway before
/// any gateway starts encoding with them (see `docs/ids.md`).
const UPSTREAM_HEX_PREFIXES: [&str; 5] = ["", "file-", "batch_", "file_", "batch-"];

/// What the object is called where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Inner {
    /// A gateway-owned object: 12 random bytes, unique across deployments.
    /// Also used as an alias for upstream objects whose ID is too long to
    /// embed (see [`IdError::TooLong`]).
    Local([u8; LOCAL_LEN]),
    /// The provider-side ID of an object living on an upstream that has its
    /// own Files/Batch API, embedded verbatim (compressed when cheap).
    Upstream(String),
}

impl Inner {
    /// A fresh random local id (96 bits from the thread-local CSPRNG).
    pub fn random_local() -> Inner {
        let mut bytes = [0u8; LOCAL_LEN];
        rand::thread_rng().fill_bytes(&mut bytes);
        Inner::Local(bytes)
    }

    /// Append the wire form (inner tag + body) to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), IdError> {
        match self {
            Inner::Local(bytes) => {
                out.push(TAG_LOCAL);
                out.extend_from_slice(bytes);
            }
            Inner::Upstream(id) if id.is_empty() => return Err(IdError::EmptyUpstream),
            Inner::Upstream(id) => match compress(id) {
                Some((tag, raw)) => {
                    out.push(tag);
                    out.extend_from_slice(&raw);
                }
                None => {
                    out.push(TAG_UPSTREAM_RAW);
                    out.extend_from_slice(id.as_bytes());
                }
            },
        }
        Ok(())
    }

    /// Parse the wire form (inner tag + body, nothing after it).
    pub(crate) fn read(wire: &[u8]) -> Result<Inner, IdError> {
        let Some((&tag, body)) = wire.split_first() else {
            return Err(IdError::Truncated);
        };
        match tag {
            TAG_LOCAL => <[u8; LOCAL_LEN]>::try_from(body)
                .map(Inner::Local)
                .map_err(|_| IdError::Malformed("local id must be 12 bytes")),
            TAG_UPSTREAM_RAW => {
                if body.is_empty() {
                    return Err(IdError::Malformed("empty upstream id"));
                }
                std::str::from_utf8(body)
                    .map(|s| Inner::Upstream(s.to_owned()))
                    .map_err(|_| IdError::Malformed("upstream id is not UTF-8"))
            }
            _ => {
                let prefix = tag
                    .checked_sub(TAG_UPSTREAM_HEX_BASE)
                    .and_then(|i| UPSTREAM_HEX_PREFIXES.get(usize::from(i)))
                    .ok_or(IdError::Malformed("unknown inner tag"))?;
                if body.is_empty() {
                    return Err(IdError::Malformed("empty upstream id"));
                }
                Ok(Inner::Upstream(format!("{prefix}{}", hex::encode(body))))
            }
        }
    }
}

/// `<known prefix><non-empty, even-length lowercase hex>` → (inner tag, raw bytes).
fn compress(id: &str) -> Option<(u8, Vec<u8>)> {
    UPSTREAM_HEX_PREFIXES
        .iter()
        .zip(TAG_UPSTREAM_HEX_BASE..)
        .find_map(|(prefix, tag)| Some((tag, hex::decode_lower(id.strip_prefix(prefix)?)?)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wire(inner: &Inner) -> Vec<u8> {
        let mut out = Vec::new();
        inner.write(&mut out).unwrap();
        out
    }

    #[test]
    fn compresses_known_hex_shapes() {
        let hex32 = "0123456789abcdef0123456789abcdef";
        for (prefix, tag) in [
            ("", 0x10),
            ("file-", 0x11),
            ("batch_", 0x12),
            ("file_", 0x13),
            ("batch-", 0x14),
        ] {
            let inner = Inner::Upstream(format!("{prefix}{hex32}"));
            let w = wire(&inner);
            assert_eq!(w[0], tag, "{prefix}");
            assert_eq!(w.len(), 1 + 16);
            assert_eq!(Inner::read(&w).unwrap(), inner);
        }
    }

    #[test]
    fn falls_back_to_raw() {
        for id in [
            "file-abc",
            "batch_ABCDEF",
            "file-abcdefghijklmnopqrstuv",
            "batch_",
            "x",
            "ünï",
        ] {
            let inner = Inner::Upstream(id.to_owned());
            let w = wire(&inner);
            assert_eq!(w[0], TAG_UPSTREAM_RAW, "{id}");
            assert_eq!(&w[1..], id.as_bytes());
            assert_eq!(Inner::read(&w).unwrap(), inner);
        }
    }

    #[test]
    fn local_round_trip() {
        let inner = Inner::random_local();
        assert_eq!(Inner::read(&wire(&inner)).unwrap(), inner);
        assert_ne!(Inner::random_local(), Inner::random_local());
    }

    #[test]
    fn rejects_malformed() {
        let mut out = Vec::new();
        assert_eq!(
            Inner::Upstream(String::new()).write(&mut out),
            Err(IdError::EmptyUpstream)
        );
        assert_eq!(Inner::read(&[]), Err(IdError::Truncated));
        assert!(matches!(
            Inner::read(&[0x00; 12]),
            Err(IdError::Malformed(_))
        ));
        assert!(matches!(
            Inner::read(&[0x00; 14]),
            Err(IdError::Malformed(_))
        ));
        assert!(matches!(Inner::read(&[0x01]), Err(IdError::Malformed(_))));
        assert!(matches!(
            Inner::read(&[0x01, 0xff, 0xfe]),
            Err(IdError::Malformed(_))
        ));
        assert!(matches!(Inner::read(&[0x12]), Err(IdError::Malformed(_))));
        for bad_tag in [0x02, 0x0f, 0x15, 0x80, 0xff] {
            assert!(
                matches!(Inner::read(&[bad_tag, 1, 2]), Err(IdError::Malformed(_))),
                "{bad_tag:#x}"
            );
        }
    }
}
