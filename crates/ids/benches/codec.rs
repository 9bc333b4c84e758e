//! ID encode/decode: every routed request decodes one ID, every created
//! object encodes one.

#![allow(clippy::unwrap_used, missing_docs)]

use batchgate_ids::{DeploymentTag, IdCodec, Inner, Kind, RoutedId};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn codec(c: &mut Criterion) {
    let codec = IdCodec::new(b"bench-secret-bench-secret-bench-");
    let tag = DeploymentTag::of("deployment-1");
    let local = RoutedId::new(Kind::File, tag, Inner::random_local());
    let upstream = RoutedId::new(
        Kind::Batch,
        tag,
        Inner::Upstream("batch_0123456789abcdef0123456789abcdef".into()),
    );
    let local_id = codec.encode(&local).unwrap();
    let upstream_id = codec.encode(&upstream).unwrap();
    let mut forged = local_id.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();

    c.bench_function("encode local file id", |b| {
        b.iter(|| codec.encode(black_box(&local)).unwrap())
    });
    c.bench_function("encode upstream batch id", |b| {
        b.iter(|| codec.encode(black_box(&upstream)).unwrap())
    });
    c.bench_function("decode local file id", |b| {
        b.iter(|| codec.decode(Kind::File, black_box(&local_id)).unwrap())
    });
    c.bench_function("decode upstream batch id", |b| {
        b.iter(|| codec.decode(Kind::Batch, black_box(&upstream_id)).unwrap())
    });
    c.bench_function("reject forged id", |b| {
        b.iter(|| codec.decode(Kind::File, black_box(&forged)).is_err())
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
