//! Property tests: decode never panics; encode → decode round-trips.
#![allow(clippy::unwrap_used)]

use batchgate_ids::{DeploymentTag, IdCodec, IdError, Inner, Kind, RoutedId, MAX_ID_LEN};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::File), Just(Kind::Batch)]
}

fn inner() -> impl Strategy<Value = Inner> {
    prop_oneof![
        any::<[u8; 12]>().prop_map(Inner::Local),
        any::<String>().prop_map(Inner::Upstream),
        "[a-zA-Z0-9_-]{1,40}".prop_map(Inner::Upstream),
        (
            "(file-|batch_|file_|batch-|)",
            proptest::collection::vec(any::<u8>(), 1..30)
        )
            .prop_map(|(p, b)| Inner::Upstream(format!(
                "{p}{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_arbitrary_strings_never_panics(s in any::<String>(), k in kind()) {
        let c = IdCodec::new(b"k");
        let _ = c.decode(k, &s);
    }

    #[test]
    fn decode_prefixed_base64ish_never_panics(k in kind(), body in "[A-Za-z0-9_=+/-]{0,70}") {
        let c = IdCodec::new(b"k");
        let s = format!("{}{body}", k.prefix());
        prop_assert!(c.decode(k, &s).is_err());
    }

    #[test]
    fn round_trip(
        secret in proptest::collection::vec(any::<u8>(), 0..100),
        k in kind(),
        tag in any::<[u8; 4]>(),
        inner in inner(),
    ) {
        let c = IdCodec::new(&secret);
        let id = RoutedId::new(k, DeploymentTag(tag), inner);
        match c.encode(&id) {
            Ok(s) => {
                prop_assert!(s.len() <= MAX_ID_LEN);
                prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                prop_assert_eq!(c.decode(k, &s).unwrap(), id);
            }
            Err(IdError::TooLong) => {
                // Only upstream ids can be too long, and only if long-ish.
                let Inner::Upstream(u) = &id.inner else { panic!("local id too long") };
                prop_assert!(u.len() > 27);
            }
            Err(IdError::EmptyUpstream) => prop_assert_eq!(&id.inner, &Inner::Upstream(String::new())),
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }

    #[test]
    fn short_upstream_ids_always_fit(k in kind(), tag in any::<[u8; 4]>(), u in "\\PC{1,6}") {
        // Any 1-6 char string is at most 24 UTF-8 bytes, well inside the budget.
        let c = IdCodec::new(b"k");
        let id = RoutedId::new(k, DeploymentTag(tag), Inner::Upstream(u));
        let s = c.encode(&id).unwrap();
        prop_assert_eq!(c.decode(k, &s).unwrap(), id);
    }
}
