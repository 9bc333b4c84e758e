//! Behavioural tests of the public codec API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batchgate_ids::{DeploymentTag, IdCodec, IdError, Inner, Kind, RoutedId, MAX_ID_LEN};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const HEX32: &str = "0123456789abcdef0123456789abcdef";

fn codec() -> IdCodec {
    IdCodec::new(SECRET)
}

fn tag() -> DeploymentTag {
    DeploymentTag::of("vllm:meta-llama/Llama-3.1-8B@pool-a")
}

fn upstream(kind: Kind, s: &str) -> RoutedId {
    RoutedId::new(kind, tag(), Inner::Upstream(s.to_owned()))
}

/// A representative set of valid ids (both kinds, all inner shapes).
fn samples() -> Vec<RoutedId> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        out.push(RoutedId::new(kind, tag(), Inner::Local([0; 12])));
        out.push(RoutedId::new(kind, tag(), Inner::Local([0xff; 12])));
        out.push(RoutedId::new_local(kind, tag()));
        out.push(upstream(kind, &format!("batch_{HEX32}")));
        out.push(upstream(kind, &format!("file-{HEX32}")));
        out.push(upstream(kind, &format!("file_{}", &HEX32[..24])));
        out.push(upstream(kind, HEX32));
        out.push(upstream(kind, "file-AbCdEfGhIjKlMnOpQrStUv"));
        out.push(upstream(kind, "x"));
        out.push(upstream(kind, "ünïcödé/with spaces"));
    }
    out
}

#[test]
fn round_trips() {
    let c = codec();
    for id in samples() {
        let s = c.encode(&id).unwrap();
        assert!(s.starts_with(id.kind.prefix()), "{s}");
        assert!(s.len() <= MAX_ID_LEN, "{s} is {} chars", s.len());
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{s}"
        );
        assert_eq!(c.decode(id.kind, &s).unwrap(), id, "{s}");
        // Deterministic: same id, same string.
        assert_eq!(c.encode(&id).unwrap(), s);
    }
}

#[test]
fn length_budget() {
    let c = codec();
    for kind in Kind::ALL {
        let local = c.encode(&RoutedId::new_local(kind, tag())).unwrap();
        assert_eq!(local.len(), kind.prefix().len() + 38, "{local}");

        let batch_hex = format!("batch_{HEX32}");
        assert_eq!(batch_hex.len(), 38);
        let s = c.encode(&upstream(kind, &batch_hex)).unwrap();
        assert_eq!(s.len(), kind.prefix().len() + 43, "{s}");

        // OpenAI-style file id: `file-` + 22 alphanumerics, stored raw.
        let openai_file = "file-1a2B3c4D5e6F7g8H9i0JkL";
        assert_eq!(openai_file.len(), 27);
        let s = c.encode(&upstream(kind, openai_file)).unwrap();
        assert!(s.len() <= MAX_ID_LEN, "{s}");
    }
}

#[test]
fn longest_fitting_upstream_ids() {
    let c = codec();
    // Raw budget: 27 bytes for `batch_` ids, 28 for `file-` ids.
    for (kind, max_raw) in [(Kind::Batch, 27), (Kind::File, 28)] {
        let fits = "z".repeat(max_raw);
        let s = c.encode(&upstream(kind, &fits)).unwrap();
        assert!(s.len() <= MAX_ID_LEN);
        assert_eq!(c.decode(kind, &s).unwrap(), upstream(kind, &fits));
        let over = "z".repeat(max_raw + 1);
        assert_eq!(c.encode(&upstream(kind, &over)), Err(IdError::TooLong));
        // Hex-compressed: the same number of raw bytes after the prefix code.
        let hex_fits = format!("batch_{}", "ab".repeat(max_raw));
        assert!(c.encode(&upstream(kind, &hex_fits)).is_ok());
        let hex_over = format!("batch_{}", "ab".repeat(max_raw + 1));
        assert_eq!(c.encode(&upstream(kind, &hex_over)), Err(IdError::TooLong));
    }
}

#[test]
fn too_long_and_empty_upstream() {
    let c = codec();
    let long = format!("file-{}", "a".repeat(200));
    assert_eq!(
        c.encode(&upstream(Kind::File, &long)),
        Err(IdError::TooLong)
    );
    assert_eq!(
        c.encode(&upstream(Kind::File, "")),
        Err(IdError::EmptyUpstream)
    );
}

/// Every single-character substitution, deletion and insertion of a valid ID
/// fails to decode.
#[test]
fn every_single_character_edit_fails() {
    let c = codec();
    let alphabet: Vec<char> = ('A'..='Z')
        .chain('a'..='z')
        .chain('0'..='9')
        .chain(['-', '_', '=', '.', '/', '+', ' ', 'é'])
        .collect();
    for id in samples() {
        let s = c.encode(&id).unwrap();
        let chars: Vec<char> = s.chars().collect();
        let mut tried = 0usize;
        for i in 0..=chars.len() {
            let mut edits = Vec::new();
            if i < chars.len() {
                let mut deleted = chars.clone();
                deleted.remove(i);
                edits.push(deleted);
                for &ch in &alphabet {
                    if ch != chars[i] {
                        let mut replaced = chars.clone();
                        replaced[i] = ch;
                        edits.push(replaced);
                    }
                }
            }
            for &ch in &alphabet {
                let mut inserted = chars.clone();
                inserted.insert(i, ch);
                edits.push(inserted);
            }
            for edit in edits {
                let edited: String = edit.into_iter().collect();
                assert_ne!(edited, s);
                assert!(
                    c.decode(id.kind, &edited).is_err(),
                    "edit {edited:?} of {s:?} decoded"
                );
                tried += 1;
            }
        }
        assert!(tried > 1000);
    }
}

#[test]
fn wrong_secret_fails() {
    let other = IdCodec::new(b"a different secret entirely......");
    for id in samples() {
        let s = codec().encode(&id).unwrap();
        assert_eq!(other.decode(id.kind, &s), Err(IdError::BadMac), "{s}");
    }
}

#[test]
fn wrong_kind_fails() {
    let c = codec();
    for id in samples() {
        let s = c.encode(&id).unwrap();
        let other = match id.kind {
            Kind::File => Kind::Batch,
            Kind::Batch => Kind::File,
        };
        assert_eq!(
            c.decode(other, &s),
            Err(IdError::WrongKind {
                expected: other,
                found: id.kind
            })
        );
        // Swapping the prefix alone does not help: the kind is under the MAC.
        let swapped = format!("{}{}", other.prefix(), &s[id.kind.prefix().len()..]);
        assert!(c.decode(other, &swapped).is_err(), "{swapped}");
    }
}

#[test]
fn deployment_is_authenticated() {
    // Two ids differing only in deployment tag have unrelated encodings.
    let c = codec();
    let a = RoutedId::new(
        Kind::File,
        DeploymentTag([0, 0, 0, 0]),
        Inner::Local([7; 12]),
    );
    let b = RoutedId::new(
        Kind::File,
        DeploymentTag([0, 0, 0, 1]),
        Inner::Local([7; 12]),
    );
    assert_ne!(c.encode(&a).unwrap(), c.encode(&b).unwrap());
}

#[test]
fn garbage_is_rejected_with_specific_errors() {
    let c = codec();
    let cases: &[(&str, IdError)] = &[
        ("", IdError::WrongPrefix(Kind::File)),
        ("file_abc", IdError::WrongPrefix(Kind::File)),
        ("FILE-abc", IdError::WrongPrefix(Kind::File)),
        (
            "batch_AAAA",
            IdError::WrongKind {
                expected: Kind::File,
                found: Kind::Batch,
            },
        ),
        ("file-", IdError::Truncated),
        ("file-A", IdError::BadEncoding),
        ("file-AQ==", IdError::BadEncoding),
        ("file-AQ", IdError::Truncated),
        ("file-AB", IdError::BadEncoding), // non-zero trailing bits
        ("file-AAAA", IdError::UnsupportedVersion(0)),
        ("file-Ag", IdError::UnsupportedVersion(2)),
        ("file-a+b/", IdError::BadEncoding),
        ("file-AQAAAAAAAAAAAAAAAAAAAAAA", IdError::BadMac),
    ];
    for (s, want) in cases {
        assert_eq!(c.decode(Kind::File, s).as_ref(), Err(want), "{s:?}");
    }
    let long = format!("file-{}", "A".repeat(100));
    assert_eq!(c.decode(Kind::File, &long), Err(IdError::BadEncoding));
}

#[test]
fn truncations_fail() {
    let c = codec();
    for id in samples() {
        let s = c.encode(&id).unwrap();
        for end in 0..s.len() {
            assert!(c.decode(id.kind, &s[..end]).is_err(), "{}", &s[..end]);
        }
    }
}
