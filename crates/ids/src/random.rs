//! Random identifiers that need no routing: request and output-line IDs.

use rand::RngCore as _;

use crate::hex;

/// `batch_req_` + 32 lowercase hex characters (128 random bits); the `id`
/// of each line in a batch output file, like OpenAI's.
pub fn batch_request_id() -> String {
    format!("batch_req_{}", random_hex32())
}

/// `req_` + 32 lowercase hex characters (128 random bits).
pub fn request_id() -> String {
    format!("req_{}", random_hex32())
}

fn random_hex32() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, prefix: &str) {
        let rest = id.strip_prefix(prefix).unwrap_or_default();
        assert_eq!(rest.len(), 32, "{id}");
        assert!(
            rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{id}"
        );
    }

    #[test]
    fn shapes_and_uniqueness() {
        check(&batch_request_id(), "batch_req_");
        check(&request_id(), "req_");
        assert_ne!(request_id(), request_id());
        assert_ne!(batch_request_id(), batch_request_id());
    }
}
