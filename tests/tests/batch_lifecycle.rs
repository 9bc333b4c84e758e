//! Every status a batch can end in, against the real binary and mock-vllm:
//! `completed` (counts, usage, timestamps), `failed` (every validation error
//! at once, with line numbers), `cancelled` (partial results kept), `expired`
//! (unfinished lines reported), plus the input-file lock and an embeddings
//! batch. The API surface around them is in `batch_api.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use batchgate_tests::one_model::{chat_batch, gateway, id, mock, CHAT, MODEL, WAIT};
use batchgate_tests::{assert_error_envelope, assert_every_id_once, chat_lines, custom_ids_of};
use serde_json::{json, Value};

fn ts(batch: &Value, key: &str) -> i64 {
    batch[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} is not set: {batch}"))
}

#[tokio::test]
async fn completed_batch_has_counts_usage_and_ordered_timestamps() {
    let mock = mock(0).await;
    let gw = gateway(&mock, &[], "").await;
    let n = 25;
    let created = chat_batch(&gw, n, "24h").await;
    assert_eq!(created["status"], "validating");
    assert_eq!(
        created["request_counts"],
        json!({"total": 0, "completed": 0, "failed": 0})
    );
    for key in [
        "output_file_id",
        "error_file_id",
        "in_progress_at",
        "completed_at",
        "errors",
        "usage",
    ] {
        assert!(created[key].is_null(), "{key} set at creation: {created}");
    }

    let done = gw.wait_batch(id(&created), WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["request_counts"],
        json!({"total": n, "completed": n, "failed": 0})
    );
    assert!(
        done["errors"].is_null() && done["error_file_id"].is_null(),
        "{done}"
    );

    // "line {i} says hello" is 4 words; the mock answers 16 tokens.
    let (input, output) = (4 * n as u64, 16 * n as u64);
    assert_eq!(
        done["usage"],
        json!({
            "input_tokens": input,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input + output,
        })
    );

    let created_at = ts(&done, "created_at");
    let (in_progress, finalizing, completed) = (
        ts(&done, "in_progress_at"),
        ts(&done, "finalizing_at"),
        ts(&done, "completed_at"),
    );
    assert!(
        created_at <= in_progress && in_progress <= finalizing && finalizing <= completed,
        "{done}"
    );
    assert_eq!(ts(&done, "expires_at"), created_at + 86_400);
    for key in ["failed_at", "expired_at", "cancelling_at", "cancelled_at"] {
        assert!(
            done[key].is_null(),
            "{key} set on a completed batch: {done}"
        );
    }

    let (out, err) = gw.results(&done).await.unwrap();
    assert!(err.is_empty());
    assert_every_id_once(&out, &err, n);
    for line in &out {
        assert_eq!(line["response"]["status_code"], 200, "{line}");
        assert_eq!(
            line["response"]["body"]["usage"]["prompt_tokens"], 4,
            "{line}"
        );
        assert_eq!(
            line["response"]["body"]["usage"]["completion_tokens"], 16,
            "{line}"
        );
    }
    let file = gw
        .get(&format!(
            "/v1/files/{}",
            done["output_file_id"].as_str().unwrap()
        ))
        .await
        .unwrap()
        .1;
    assert_eq!(file["purpose"], "batch_output", "{file}");
    assert_eq!(mock.stats().requests, n as u64);
}

#[tokio::test]
async fn invalid_input_fails_with_every_error_and_no_upstream_call() {
    let mock = mock(0).await;
    let gw = gateway(&mock, &[], "").await;
    let line = |custom_id: &str, url: &str, body: Value| {
        json!({"custom_id": custom_id, "method": "POST", "url": url, "body": body}).to_string()
    };
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let lines = [
        line("a", CHAT, json!({"model": MODEL, "messages": msgs})),
        r#"{"custom_id": "b", "method": "POST", "url": "#.to_string(),
        line("c", CHAT, json!({"model": MODEL, "messages": msgs})),
        line("a", CHAT, json!({"model": MODEL, "messages": msgs})),
        line(
            "e",
            "/v1/embeddings",
            json!({"model": MODEL, "messages": msgs}),
        ),
        line(
            "f",
            CHAT,
            json!({"model": "some-other-model", "messages": msgs}),
        ),
        line(
            "g",
            CHAT,
            json!({"model": MODEL, "messages": msgs, "stream": true}),
        ),
        line(
            "h",
            CHAT,
            json!({"model": MODEL, "messages": msgs, "api_base": "http://evil.example"}),
        ),
        line("i", CHAT, json!({"model": MODEL, "messages": msgs})),
    ];
    let file = gw
        .upload(MODEL, "bad.jsonl", (lines.join("\n") + "\n").into_bytes())
        .await
        .unwrap();
    let created = gw.create_batch(id(&file), CHAT, "24h").await.unwrap();
    let done = gw.wait_batch(id(&created), WAIT).await.unwrap();

    assert_eq!(done["status"], "failed", "{done}");
    ts(&done, "failed_at");
    assert!(
        done["in_progress_at"].is_null() && done["output_file_id"].is_null(),
        "{done}"
    );
    assert_eq!(done["errors"]["object"], "list");
    let got: Vec<(u64, &str)> = done["errors"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (2, "invalid_json_line"),
            (4, "duplicate_custom_id"),
            (5, "invalid_url"),
            (6, "mismatched_model"),
            (7, "streaming_unsupported"),
            (8, "forbidden_parameter"),
        ],
        "{done}"
    );
    for e in done["errors"]["data"].as_array().unwrap() {
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains(&format!("Line {}", e["line"])),
            "{e}"
        );
        assert!(e.get("param").is_some(), "{e}");
    }
    assert_eq!(
        mock.stats().requests,
        0,
        "a failed batch must not reach the upstream"
    );
}

#[tokio::test]
async fn empty_input_fails_with_empty_file() {
    let mock = mock(0).await;
    let gw = gateway(&mock, &[], "").await;
    for content in [&b""[..], b"\n  \n\n"] {
        let file = gw
            .upload(MODEL, "empty.jsonl", content.to_vec())
            .await
            .unwrap();
        let created = gw.create_batch(id(&file), CHAT, "24h").await.unwrap();
        let done = gw.wait_batch(id(&created), WAIT).await.unwrap();
        assert_eq!(done["status"], "failed", "{done}");
        ts(&done, "failed_at");
        let codes: Vec<_> = done["errors"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["code"].clone())
            .collect();
        assert_eq!(codes, [json!("empty_file")], "{done}");
    }
    assert_eq!(mock.stats().requests, 0);
}

#[tokio::test]
async fn cancel_keeps_partial_results_and_stops_upstream_calls() {
    let mock = mock(200).await;
    let gw = gateway(&mock, &[("max_parallel_requests", "2")], "").await;
    let n = 60;
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, n))
        .await
        .unwrap();
    let created = gw.create_batch(id(&file), CHAT, "24h").await.unwrap();
    let running = gw
        .wait_batch_until(id(&created), WAIT, |b| {
            b["request_counts"]["completed"].as_u64() >= Some(4)
        })
        .await
        .unwrap();
    assert_eq!(running["status"], "in_progress", "{running}");
    assert_eq!(running["request_counts"]["total"], n);

    // The input of a running batch cannot be deleted.
    let (status, body) = gw
        .http_delete(&format!("/v1/files/{}", id(&file)))
        .await
        .unwrap();
    assert_eq!(status, 409, "{body}");
    assert_error_envelope(&body);

    let (status, cancelling) = gw
        .post(&format!("/v1/batches/{}/cancel", id(&created)), &json!({}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{cancelling}");
    assert_eq!(cancelling["status"], "cancelling", "{cancelling}");
    ts(&cancelling, "cancelling_at");

    let done = gw.wait_batch(id(&created), WAIT).await.unwrap();
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(ts(&done, "cancelling_at") <= ts(&done, "cancelled_at"));
    assert!(done["completed_at"].is_null(), "{done}");

    let (out, err) = gw.results(&done).await.unwrap();
    let counts = &done["request_counts"];
    assert_eq!(counts["total"], n);
    assert_eq!(
        counts["completed"].as_u64().unwrap(),
        out.len() as u64,
        "{done}"
    );
    assert_eq!(
        counts["failed"].as_u64().unwrap(),
        err.len() as u64,
        "{done}"
    );
    assert!(
        out.len() >= 4 && out.len() < n,
        "{} lines in the output",
        out.len()
    );
    for line in &out {
        assert_eq!(line["response"]["status_code"], 200, "{line}");
    }
    let ids = custom_ids_of(&out)
        .into_iter()
        .chain(custom_ids_of(&err))
        .collect::<Vec<_>>();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "a custom id appears twice"
    );

    // Every upstream call made has its result kept, and no more are made.
    let calls = mock.stats().requests;
    assert_eq!(calls, (out.len() + err.len()) as u64);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        mock.stats().requests,
        calls,
        "upstream calls continued after the cancel"
    );

    // Cancelling an ended batch is a conflict; its input is free again.
    let (status, body) = gw
        .post(&format!("/v1/batches/{}/cancel", id(&created)), &json!({}))
        .await
        .unwrap();
    assert_eq!(status, 409, "{body}");
    assert_error_envelope(&body);
    let (status, body) = gw
        .http_delete(&format!("/v1/files/{}", id(&file)))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn window_passing_expires_the_batch_and_reports_unfinished_lines() {
    let mock = mock(500).await;
    let extra = "batch_settings:\n  completion_windows: [\"24h\", \"2s\"]\n";
    let gw = gateway(&mock, &[("max_parallel_requests", "1")], extra).await;
    let n = 30;
    let created = chat_batch(&gw, n, "2s").await;
    assert_eq!(created["completion_window"], "2s");
    assert_eq!(ts(&created, "expires_at"), ts(&created, "created_at") + 2);

    let done = gw.wait_batch(id(&created), WAIT).await.unwrap();
    assert_eq!(done["status"], "expired", "{done}");
    ts(&done, "in_progress_at");
    assert!(ts(&done, "expired_at") >= ts(&done, "expires_at"), "{done}");
    assert!(done["completed_at"].is_null(), "{done}");

    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    assert_eq!(done["request_counts"]["total"], n);
    assert_eq!(
        done["request_counts"]["completed"].as_u64().unwrap(),
        out.len() as u64
    );
    assert_eq!(
        done["request_counts"]["failed"].as_u64().unwrap(),
        err.len() as u64
    );
    assert!(
        !err.is_empty(),
        "30 lines at 500 ms each cannot all finish in 2 s"
    );
    for line in &out {
        assert_eq!(line["response"]["status_code"], 200, "{line}");
    }
    for line in &err {
        assert!(line["response"].is_null(), "{line}");
        assert_eq!(line["error"]["code"], "batch_expired", "{line}");
        assert!(line["error"]["message"].is_string(), "{line}");
        assert!(
            line["id"].as_str().unwrap().starts_with("batch_req_"),
            "{line}"
        );
    }
    // Only the lines that ran reached the upstream.
    assert_eq!(mock.stats().requests, out.len() as u64);
}

#[tokio::test]
async fn embeddings_batch_completes() {
    let mock = mock(0).await;
    let gw = gateway(&mock, &[], "").await;
    let n = 5;
    let lines: String = (1..=n)
        .map(|i| {
            json!({"custom_id": format!("req-{i}"), "method": "POST", "url": "/v1/embeddings",
                "body": {"model": MODEL, "input": "a b c"}})
            .to_string()
                + "\n"
        })
        .collect();
    let file = gw
        .upload(MODEL, "emb.jsonl", lines.into_bytes())
        .await
        .unwrap();
    let created = gw
        .create_batch(id(&file), "/v1/embeddings", "24h")
        .await
        .unwrap();
    assert_eq!(created["endpoint"], "/v1/embeddings");
    let done = gw.wait_batch(id(&created), WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["request_counts"],
        json!({"total": n, "completed": n, "failed": 0})
    );
    assert_eq!(done["usage"]["input_tokens"], 3 * n);
    assert_eq!(done["usage"]["output_tokens"], 0);

    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    for line in &out {
        let body = &line["response"]["body"];
        assert_eq!(body["object"], "list", "{line}");
        assert_eq!(body["data"][0]["object"], "embedding", "{line}");
        assert!(
            body["data"][0]["embedding"]
                .as_array()
                .is_some_and(|v| !v.is_empty()),
            "{line}"
        );
    }
    assert_eq!(mock.stats().endpoint("/v1/embeddings"), n as u64);
}
