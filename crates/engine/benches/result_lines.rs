//! Result-line serialization: every finished line becomes one output-file
//! line (`{"id":"batch_req_…","custom_id",…,"response":{…}}`) before it is
//! journaled.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use batchgate_engine::success_line;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

const LINES: u64 = 10_000;

fn result_lines(c: &mut Criterion) {
    let body = json!({
        "id": "chatcmpl-5116d39cbef5d25ef85c278885e9f69c", "object": "chat.completion", "created": 1795698587,
        "model": "meta-llama/Llama-2-7b-chat-hf",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "The quick brown fox jumps over the lazy dog. ".repeat(4)},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 36, "total_tokens": 78, "prompt_tokens_details": null}
    });
    let bytes: usize = (0..LINES)
        .map(|i| {
            success_line(i, format!("request-{i}"), 200, "req_0".into(), body.clone())
                .line
                .len()
                + 1
        })
        .sum();
    let mut group = c.benchmark_group("result lines");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("serialize 10k success lines", |b| {
        b.iter(|| {
            let mut n = 0;
            for i in 0..LINES {
                n += success_line(
                    i,
                    format!("request-{i}"),
                    200,
                    format!("req_{i}"),
                    body.clone(),
                )
                .line
                .len();
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, result_lines);
criterion_main!(benches);
