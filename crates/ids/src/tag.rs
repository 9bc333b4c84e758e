//! Deployment tags: which configured deployment an ID routes to.

use std::fmt;

use sha2::{Digest, Sha256};

/// Four bytes naming the deployment (upstream) an object lives on.
///
/// Derived with [`DeploymentTag::of`] from a stable identity string that the
/// config crate computes for each deployment. Four bytes keep IDs short;
/// with a handful of deployments per gateway an accidental collision
/// (≈ n²/2³³) is negligible, and the config crate can detect one at load
/// time by comparing the tags of all configured deployments.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DeploymentTag(pub [u8; 4]);

impl DeploymentTag {
    /// The first 4 bytes of SHA-256 of `identity`.
    ///
    /// ```
    /// use batchgate_ids::DeploymentTag;
    /// let a = DeploymentTag::of("vllm:llama-70b@pool-a");
    /// assert_eq!(a, DeploymentTag::of("vllm:llama-70b@pool-a"));
    /// assert_ne!(a, DeploymentTag::of("vllm:llama-70b@pool-b"));
    /// ```
    pub fn of(identity: &str) -> DeploymentTag {
        let digest = Sha256::digest(identity.as_bytes());
        let mut tag = [0u8; 4];
        tag.copy_from_slice(&digest[..4]);
        DeploymentTag(tag)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }
}

/// Lowercase hex, e.g. `1a2b3c4d`.
impl fmt::Display for DeploymentTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

impl fmt::Debug for DeploymentTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeploymentTag({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // sha256("") = e3b0c442...
        assert_eq!(
            DeploymentTag::of(""),
            DeploymentTag([0xe3, 0xb0, 0xc4, 0x42])
        );
        assert_eq!(DeploymentTag::of("").to_string(), "e3b0c442");
        assert_eq!(
            format!("{:?}", DeploymentTag::of("")),
            "DeploymentTag(e3b0c442)"
        );
    }
}
