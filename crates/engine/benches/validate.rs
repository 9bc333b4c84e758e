//! Throughput of the `validating` phase on a realistic 50,000-line chat
//! batch (~20 MB), the largest request count OpenAI allows in one batch.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use batchgate_core::ByteStream;
use batchgate_engine::{validate_stream, LineReader, Outcome, Rules, Validator};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;

const LINES: usize = 50_000;
const CHUNK: usize = 64 * 1024;

fn chat_file() -> Bytes {
    let filler = "The quick brown fox jumps over the lazy dog, again and again. ";
    let mut out = String::with_capacity(LINES * 420);
    for i in 0..LINES {
        let user = filler.repeat(2 + i % 2);
        out.push_str(&format!(
            concat!(
                r#"{{"custom_id":"request-{}","method":"POST","url":"/v1/chat/completions","#,
                r#""body":{{"model":"meta-llama/Llama-3.1-8B-Instruct","messages":["#,
                r#"{{"role":"system","content":"You are a helpful assistant. Answer briefly."}},"#,
                r#"{{"role":"user","content":"Question {}: {}"}}],"max_tokens":256,"temperature":0.2}}}}"#,
                "\n"
            ),
            i, i, user
        ));
    }
    Bytes::from(out)
}

fn rules() -> Rules {
    Rules {
        endpoint: "/v1/chat/completions".to_string(),
        accepted_models: vec![
            "llama-8b".to_string(),
            "meta-llama/Llama-3.1-8B-Instruct".to_string(),
        ],
        max_lines: 50_000,
        max_bytes: 200 * 1024 * 1024,
        max_reported_errors: 100,
    }
}

fn stream_of(file: &Bytes) -> ByteStream {
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..file.len())
        .step_by(CHUNK)
        .map(|at| Ok(file.slice(at..(at + CHUNK).min(file.len()))))
        .collect();
    futures::stream::iter(chunks).boxed()
}

fn bench(c: &mut Criterion) {
    let file = chat_file();
    println!("input: {LINES} lines, {} bytes", file.len());
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Bytes(file.len() as u64));
    group.sample_size(10);
    group.bench_function("chat_50k_lines_validate_stream", |b| {
        b.iter(|| {
            let outcome =
                futures::executor::block_on(validate_stream(stream_of(&file), rules(), 1 << 20))
                    .unwrap();
            assert_eq!(
                outcome,
                Outcome::Valid {
                    lines: LINES as u64
                }
            );
        });
    });
    group.bench_function("chat_50k_lines_check", |b| {
        b.iter(|| {
            futures::executor::block_on(async {
                let mut reader = LineReader::new(stream_of(&file), 1 << 20);
                let mut validator = Validator::new(rules());
                let mut kept = 0u64;
                while let Some(line) = reader.next_line().await.unwrap() {
                    kept += u64::from(validator.check(&line).is_some());
                }
                assert_eq!(kept, LINES as u64);
                validator.finish(reader.bytes_read())
            })
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
