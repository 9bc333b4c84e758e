//! A refused upload leaves nothing behind, wherever in the multipart body
//! the refusal happens: after the file part was already streamed to the
//! store (a second file part, a bad text field, a truncated body), or while
//! it is spooled. The client reads a 400 in the envelope; nothing is listed,
//! and the data directory's blob and spool directories gain no file.
//! Filenames are refused for what is actually wrong with them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use batchgate_tests::{assert_error_envelope, config, files_under, Gateway, MASTER_KEY};
use serde_json::Value;

const NOWHERE: &str = "http://127.0.0.1:9";
const LINE: &str = "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\",\"messages\":[]}}\n";

/// A multipart body built part by part (boundary `B0`).
struct Body(Vec<u8>);

impl Body {
    fn new() -> Body {
        Body(Vec::new())
    }

    fn text(mut self, name: &str, value: &[u8]) -> Body {
        self.0.extend(
            format!("--B0\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        self.0.extend(value);
        self.0.extend(b"\r\n");
        self
    }

    fn file(mut self, filename: &str, content: &[u8]) -> Body {
        self.0.extend(
            format!(
                "--B0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        self.0.extend(content);
        self.0.extend(b"\r\n");
        self
    }

    /// The closing boundary.
    fn end(mut self) -> Vec<u8> {
        self.0.extend(b"--B0--\r\n");
        self.0
    }

    /// No closing boundary: the body just stops.
    fn cut(self) -> Vec<u8> {
        self.0
    }

    /// Stops inside the headers of a next part.
    fn cut_in_next_part(mut self) -> Vec<u8> {
        self.0.extend(b"--B0\r\nContent-Disposition: form-da");
        self.0
    }
}

async fn post(gw: &Gateway, body: Vec<u8>) -> (u16, Value) {
    let r = gw
        .http
        .post(gw.url("/v1/files"))
        .bearer_auth(MASTER_KEY)
        .header("content-type", "multipart/form-data; boundary=B0")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn stored(gw: &Gateway) -> Vec<PathBuf> {
    let mut all = files_under(&gw.data_dir().join("blobs"));
    all.extend(files_under(&gw.data_dir().join("spool")));
    all
}

/// [`stored`], once it is empty or after a generous bound (the upstream
/// cleans up an aborted upload when it notices the abort).
async fn stored_once_settled(gw: &Gateway) -> Vec<PathBuf> {
    for _ in 0..300 {
        let now = stored(gw);
        if now.is_empty() {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stored(gw)
}

async fn listed(gw: &Gateway) -> Value {
    let (status, list) = gw.get("/v1/files").await.unwrap();
    assert_eq!(status, 200, "{list}");
    list["data"].clone()
}

/// `body` is refused with a 400 in the envelope, and afterwards nothing is
/// listed, usable or on disk.
async fn assert_refused_without_trace(gw: &Gateway, what: &str, body: Vec<u8>) -> Value {
    let (status, answer) = post(gw, body).await;
    assert_eq!(status, 400, "{what}: {answer}");
    assert_error_envelope(&answer);
    assert_eq!(
        listed(gw).await,
        serde_json::json!([]),
        "{what}: a refused upload is listed"
    );
    assert_eq!(
        stored(gw),
        Vec::<PathBuf>::new(),
        "{what}: a refused upload left files"
    );
    answer
}

fn big_jsonl() -> Vec<u8> {
    LINE.repeat(2_000).into_bytes()
}

#[tokio::test]
async fn a_refusal_after_a_streamed_file_part_keeps_nothing() {
    let gw = Gateway::start(&config(&[("m", NOWHERE)], ""))
        .await
        .unwrap();
    // Purpose first: the file part streams straight to the store.
    let streamed = || {
        Body::new()
            .text("purpose", b"batch")
            .file("a.jsonl", &big_jsonl())
    };
    let long_field = vec![b'x'; 70 * 1024];
    let cases = [
        (
            "a second file part",
            streamed().file("b.jsonl", LINE.as_bytes()).end(),
        ),
        (
            "an over-long text field",
            streamed().text("notes", &long_field).end(),
        ),
        (
            "an over-long model field",
            streamed().text("model", &long_field).end(),
        ),
        (
            "a non-UTF-8 text field",
            streamed().text("model", b"\xff\xfe\xfd").end(),
        ),
        ("no closing boundary", streamed().cut()),
        (
            "a cut in the next part's headers",
            streamed().cut_in_next_part(),
        ),
        (
            "a late invalid expiry",
            streamed()
                .text("expires_after[anchor]", b"created_at")
                .text("expires_after[seconds]", b"soon")
                .end(),
        ),
        (
            "a late unknown purpose",
            streamed().text("purpose", b"nonsense").end(),
        ),
    ];
    for (what, body) in cases {
        assert_refused_without_trace(&gw, what, body).await;
    }
    // The same shapes when the file part comes first and is spooled.
    let spooled = || Body::new().file("a.jsonl", &big_jsonl());
    let cases = [
        (
            "spooled, then a second file part",
            spooled()
                .file("b.jsonl", LINE.as_bytes())
                .text("purpose", b"batch")
                .end(),
        ),
        (
            "spooled, then a non-UTF-8 field",
            spooled().text("purpose", b"\xff").end(),
        ),
        (
            "spooled, no closing boundary",
            spooled().text("purpose", b"batch").cut(),
        ),
    ];
    for (what, body) in cases {
        assert_refused_without_trace(&gw, what, body).await;
    }
    // Still serving, and an ordinary upload is kept.
    let (status, file) = post(&gw, streamed().end()).await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(listed(&gw).await.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn filenames_are_refused_for_what_is_wrong_with_them() {
    let gw = Gateway::start(&config(&[("m", NOWHERE)], ""))
        .await
        .unwrap();
    let long = format!("{}.jsonl", "n".repeat(5_000));
    for order in ["purpose first", "file first"] {
        let body = |filename: &str| match order {
            "purpose first" => Body::new()
                .text("purpose", b"batch")
                .file(filename, LINE.as_bytes())
                .end(),
            _ => Body::new()
                .file(filename, LINE.as_bytes())
                .text("purpose", b"batch")
                .end(),
        };
        let answer = assert_refused_without_trace(&gw, "a 5 KB filename", body(&long)).await;
        let message = answer["error"]["message"].as_str().unwrap();
        assert_eq!(answer["error"]["param"], "file", "{answer}");
        assert!(message.contains("255"), "the limit is named: {message}");
        assert!(
            !message.contains("jsonl"),
            "not a format problem: {message}"
        );

        for nameless in ["", "dir/", "   "] {
            let answer = assert_refused_without_trace(&gw, "no filename", body(nameless)).await;
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("no filename"), "{nameless:?}: {message}");
        }
        let answer = assert_refused_without_trace(&gw, "a .txt file", body("a.txt")).await;
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("Must be .jsonl") && message.contains("a.txt"),
            "{message}"
        );
    }
    // Exactly at the limit is accepted.
    let at_limit = format!("{}.jsonl", "n".repeat(249));
    let (status, file) = post(
        &gw,
        Body::new()
            .text("purpose", b"batch")
            .file(&at_limit, LINE.as_bytes())
            .end(),
    )
    .await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["filename"], at_limit.as_str());
}

#[tokio::test]
async fn a_refused_forwarded_upload_is_not_kept_upstream_either() {
    let back = Gateway::start(&config(&[("back-model", NOWHERE)], ""))
        .await
        .unwrap();
    let front_config = format!(
        "model_list:\n- model_name: front-model\n  litellm_params:\n    model: hosted_vllm/back-model\n    api_base: {}/v1\n    api_key: {MASTER_KEY}\n    batch_api: upstream\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        back.base
    );
    let front = Gateway::start(&front_config).await.unwrap();
    let streamed = || {
        Body::new()
            .text("purpose", b"batch")
            .file("a.jsonl", &big_jsonl())
    };
    let cases = [
        (
            "a second file part",
            streamed().file("b.jsonl", LINE.as_bytes()).end(),
        ),
        (
            "a non-UTF-8 text field",
            streamed().text("model", b"\xff").end(),
        ),
        ("no closing boundary", streamed().cut()),
    ];
    for (what, body) in cases {
        assert_refused_without_trace(&front, what, body).await;
        assert_eq!(
            listed(&back).await,
            serde_json::json!([]),
            "{what}: kept upstream"
        );
        // The upstream learns of the refusal when the front drops its
        // request, which may be a moment after the front answered: its
        // half-written upload must be gone by then, not at once.
        assert_eq!(
            stored_once_settled(&back).await,
            Vec::<PathBuf>::new(),
            "{what}: files upstream"
        );
    }
    let (status, file) = post(&front, streamed().end()).await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(listed(&back).await.as_array().map(Vec::len), Some(1));
}
