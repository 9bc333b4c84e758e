//! The blob contract, for every backend: a stored object reads back byte
//! for byte; a refused, failed or oversized upload leaves nothing visible;
//! deletes are idempotent; prefixes keep deployments of one bucket apart.
//! Runs on local disk always, and on a real S3-compatible server when
//! `BATCHGATE_TEST_S3_ENDPOINT` names one (`cargo xtask ci` starts moto's
//! and sets `BATCHGATE_REQUIRE_S3`, which makes its absence a failure).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batchgate_core::ByteStream;
use batchgate_store::{Blobs, PutOutcome};
use bytes::Bytes;
use futures::StreamExt;

fn body(chunks: Vec<&'static [u8]>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed()
}

async fn read_all(blobs: &Blobs, path: &str) -> Vec<u8> {
    let (size, mut s) = blobs.get_stream(path).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    assert_eq!(size, out.len() as u64, "reported size of {path}");
    out
}

/// A fresh bucket on the test S3 server, if there is one.
async fn s3_bucket() -> Option<(String, Vec<(String, String)>)> {
    let Ok(endpoint) = std::env::var("BATCHGATE_TEST_S3_ENDPOINT") else {
        assert!(
            std::env::var_os("BATCHGATE_REQUIRE_S3").is_none(),
            "BATCHGATE_REQUIRE_S3 is set but BATCHGATE_TEST_S3_ENDPOINT is not"
        );
        eprintln!(
            "no BATCHGATE_TEST_S3_ENDPOINT: S3 blob tests skipped (cargo xtask ci runs them)"
        );
        return None;
    };
    let bucket = format!("blobs-{}", rand_suffix());
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("the test S3 server answers");
    assert!(
        created.status().is_success(),
        "create bucket: {}",
        created.status()
    );
    let vars = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    Some((bucket, vars))
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}-{}", std::process::id())
}

/// Every backend under test, each empty: (name, blobs, keep-alive).
async fn backends() -> Vec<(&'static str, Blobs, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let mut all = vec![("local", Blobs::from_url(&url).unwrap(), Some(dir))];
    if let Some((bucket, vars)) = s3_bucket().await {
        let blobs = Blobs::from_url_with(&format!("s3://{bucket}/gw/data"), vars).unwrap();
        all.push(("s3", blobs, None));
    }
    all
}

#[tokio::test]
async fn objects_round_trip_and_the_limit_keeps_nothing() {
    for (name, blobs, _keep) in backends().await {
        let ok = blobs
            .put_stream("files/a", body(vec![b"hello ", b"world"]), 100)
            .await
            .unwrap();
        assert!(matches!(ok, PutOutcome::Stored { bytes: 11 }), "{name}");
        assert_eq!(read_all(&blobs, "files/a").await, b"hello world", "{name}");

        let big = blobs
            .put_stream("files/b", body(vec![b"0123456789", b"x"]), 10)
            .await
            .unwrap();
        assert!(matches!(big, PutOutcome::TooLarge), "{name}");
        assert!(
            blobs.get_stream("files/b").await.is_err(),
            "{name}: a refused upload must not be visible"
        );

        let empty = blobs.put_stream("files/c", body(vec![]), 10).await.unwrap();
        assert!(matches!(empty, PutOutcome::Stored { bytes: 0 }), "{name}");
        assert!(read_all(&blobs, "files/c").await.is_empty(), "{name}");

        blobs.delete("files/a").await.unwrap();
        blobs.delete("files/a").await.unwrap();
        assert!(blobs.get_stream("files/a").await.is_err(), "{name}");
    }
}

#[tokio::test]
async fn a_failing_body_leaves_nothing_visible() {
    for (name, blobs, _keep) in backends().await {
        // Past the first part, so a real multipart upload was under way.
        let big = Bytes::from(vec![b'x'; 6 * 1024 * 1024]);
        let failing = futures::stream::iter(vec![
            Ok(big),
            Ok(Bytes::from_static(b"partial")),
            Err(std::io::Error::other("client went away")),
        ])
        .boxed();
        let out = blobs
            .put_stream("files/d", failing, u64::MAX)
            .await
            .unwrap();
        assert!(matches!(out, PutOutcome::BodyError(_)), "{name}");
        assert!(blobs.get_stream("files/d").await.is_err(), "{name}");
    }
}

#[tokio::test]
async fn a_many_part_upload_reads_back_byte_for_byte() {
    for (name, blobs, _keep) in backends().await {
        // 13 MiB in uneven chunks: several parts on every backend, the
        // last one short.
        let chunks: Vec<Bytes> = (0..13 * 16)
            .map(|i: u32| Bytes::from(vec![(i % 251) as u8; 64 * 1024 + (i as usize % 7)]))
            .collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let stream = futures::stream::iter(chunks.into_iter().map(Ok)).boxed();
        let out = blobs
            .put_stream("files/big", stream, u64::MAX)
            .await
            .unwrap();
        assert!(
            matches!(out, PutOutcome::Stored { bytes } if bytes == expected.len() as u64),
            "{name}: {out:?}"
        );
        assert!(
            read_all(&blobs, "files/big").await == expected,
            "{name}: bytes differ"
        );
    }
}

#[tokio::test]
async fn prefixes_keep_two_gateways_of_one_bucket_apart() {
    let Some((bucket, vars)) = s3_bucket().await else {
        return;
    };
    let a = Blobs::from_url_with(&format!("s3://{bucket}/a"), vars.clone()).unwrap();
    let b = Blobs::from_url_with(&format!("s3://{bucket}/b/"), vars).unwrap();
    a.put_stream("files/x", body(vec![b"from a"]), 100)
        .await
        .unwrap();
    assert!(b.get_stream("files/x").await.is_err());
    assert_eq!(read_all(&a, "files/x").await, b"from a");
}

#[test]
fn unsupported_urls_are_refused_with_the_reason() {
    for url in ["gs://bucket/x", "s3:///no-bucket", "http://example.com/x"] {
        let err = Blobs::from_url(url).err().map(|e| e.to_string());
        assert!(err.is_some(), "{url} accepted");
    }
}
