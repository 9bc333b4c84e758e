//! What every client relies on whatever the route: `x-request-id` on every
//! response, OpenAI-shaped error bodies, authentication, rejection of
//! malformed input without a 500, health probes, graceful shutdown and the
//! refusal to run without a master key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use batchgate_tests::{
    assert_error_envelope, config, files_under, run_until_exit, Gateway, MASTER_KEY,
};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};

const NOWHERE: &str = "http://127.0.0.1:9";
const JSONL: &str = "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\",\"messages\":[]}}\n";

async fn gateway() -> Gateway {
    Gateway::start(&config(&[("m", NOWHERE)], ""))
        .await
        .unwrap()
}

fn req(gw: &Gateway, method: Method, path: &str) -> RequestBuilder {
    gw.http.request(method, gw.url(path))
}

fn authed(gw: &Gateway, method: Method, path: &str) -> RequestBuilder {
    req(gw, method, path).bearer_auth(MASTER_KEY)
}

/// Status, `x-request-id` and JSON body (null if not JSON).
async fn parts(r: Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let rid = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = r.text().await.unwrap();
    (
        status,
        rid,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn expect_error(r: RequestBuilder, status: u16) -> Value {
    let (got, rid, body) = parts(r.send().await.unwrap()).await;
    assert_eq!(got, status, "{body}");
    assert!(!rid.is_empty(), "no x-request-id on a {status}");
    assert_error_envelope(&body);
    body
}

#[tokio::test]
async fn every_response_has_a_request_id_and_errors_have_the_envelope() {
    let gw = gateway().await;
    let upload = || {
        let part = reqwest::multipart::Part::bytes(JSONL.as_bytes().to_vec()).file_name("a.jsonl");
        reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part("file", part)
    };
    let cases: Vec<(RequestBuilder, u16)> = vec![
        (authed(&gw, Method::GET, "/v1/files"), 200),
        (
            authed(&gw, Method::POST, "/v1/files").multipart(upload()),
            200,
        ),
        (authed(&gw, Method::GET, "/v1/batches"), 200),
        (req(&gw, Method::GET, "/health/liveliness"), 200),
        (req(&gw, Method::GET, "/health/readiness"), 200),
        (authed(&gw, Method::GET, "/v1/files?limit=0"), 400),
        (
            authed(&gw, Method::POST, "/v1/batches")
                .header("content-type", "application/json")
                .body("{"),
            400,
        ),
        (req(&gw, Method::GET, "/v1/files"), 401),
        (authed(&gw, Method::GET, "/v1/files/file-doesnotexist"), 404),
        (
            authed(&gw, Method::GET, "/v1/batches/batch_doesnotexist"),
            404,
        ),
        (authed(&gw, Method::GET, "/v1/no/such/route"), 404),
        (req(&gw, Method::GET, "/nope"), 404),
        (authed(&gw, Method::PUT, "/v1/files"), 405),
        (authed(&gw, Method::PATCH, "/v1/batches"), 405),
        (authed(&gw, Method::POST, "/files/file-x/content"), 405),
    ];
    let mut seen = HashSet::new();
    for (r, want) in cases {
        let (status, rid, body) = parts(r.send().await.unwrap()).await;
        assert_eq!(status, want, "{body}");
        assert!(!rid.is_empty(), "no x-request-id on a {status}: {body}");
        assert!(seen.insert(rid.clone()), "request id {rid} reused");
        if status >= 400 {
            assert_error_envelope(&body);
        }
    }
}

#[tokio::test]
async fn api_keys_are_checked() {
    let gw = gateway().await;
    for r in [
        req(&gw, Method::GET, "/v1/files"),
        req(&gw, Method::GET, "/v1/files").bearer_auth("sk-wrong"),
        req(&gw, Method::GET, "/v1/files").bearer_auth(""),
        req(&gw, Method::GET, "/v1/files").bearer_auth(format!("{MASTER_KEY}x")),
        req(&gw, Method::GET, "/v1/files").header("x-api-key", "sk-wrong"),
        req(&gw, Method::GET, "/files"),
        req(&gw, Method::POST, "/v1/batches").json(&json!({})),
        req(&gw, Method::GET, "/v1/files/file-x/content"),
    ] {
        let body = expect_error(r, 401).await;
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    let (status, _, _) = parts(
        req(&gw, Method::GET, "/v1/files")
            .header("x-api-key", MASTER_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "x-api-key is an alternative to Authorization");
    let (status, _, _) = parts(authed(&gw, Method::GET, "/files").send().await.unwrap()).await;
    assert_eq!(status, 200);
    let (status, _, _) = parts(
        req(&gw, Method::GET, "/health/liveliness")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "health probes need no key");
    let (status, _, body) = parts(
        req(&gw, Method::GET, "/health/readiness")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Like the Python SDK (httpx): writes a whole 32 MB multipart upload named
/// `filename`, with no `Expect: 100-continue`, and only then reads the
/// answer. Status and JSON body.
async fn upload_then_read(gw: &Gateway, headers: &str, filename: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut body = format!(
        "--B0\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--B0\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\r\n"
    )
    .into_bytes();
    body.extend(std::iter::repeat_n(b'x', 32_000_000));
    body.extend(b"\r\n--B0--\r\n");
    let head = format!(
        "POST /v1/files HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\
         Content-Type: multipart/form-data; boundary=B0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let addr = gw.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body)
        .await
        .expect("the gateway reset the upload");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let (head, json) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.to_ascii_lowercase().contains("x-request-id"), "{head}");
    let status = head[9..12].parse().unwrap();
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_refused_large_upload_still_gets_its_error() {
    // The gateway has its answer while the client is still sending; the
    // client must get to read it rather than a reset connection.
    let cfg = config(&[("m", NOWHERE)], "  max_file_size_mb: 1\n");
    let gw = Gateway::start(&cfg).await.unwrap();
    let key = format!("Authorization: Bearer {MASTER_KEY}\r\n");
    let cases = [
        (
            "Authorization: Bearer sk-wrong\r\n",
            "a.jsonl",
            401,
            "code",
            "invalid_api_key",
        ),
        (&key, "a.txt", 400, "param", "file"),
        (&key, "a.jsonl", 413, "param", "file"),
        (
            &format!("{key}x-litellm-model: zzz\r\n"),
            "a.jsonl",
            400,
            "param",
            "model",
        ),
    ];
    for (headers, filename, status, field, value) in cases {
        let (got, body) = upload_then_read(&gw, headers, filename).await;
        assert_eq!(got, status, "{body}");
        assert_error_envelope(&body);
        assert_eq!(body["error"][field], value, "{body}");
    }
    assert!(files_under(&gw.data_dir().join("blobs")).is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_400s() {
    let gw = gateway().await;
    let files = || authed(&gw, Method::POST, "/v1/files");
    let multipart = "multipart/form-data; boundary=XyZ";
    let cases = vec![
        files().header("content-type", multipart).body("this is not multipart at all"),
        files().header("content-type", multipart).body(
            "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--XyZ\r\n\
             Content-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n{\"truncated\"",
        ),
        files().header("content-type", "multipart/form-data").body("--\r\n"),
        files().json(&json!({"purpose": "batch", "file": "abc"})),
        files().header("content-type", "text/plain").body("purpose=batch"),
        files(),
    ];
    for r in cases {
        expect_error(r, 400).await;
    }
    let batches =
        || authed(&gw, Method::POST, "/v1/batches").header("content-type", "application/json");
    for body in [
        "{",
        "not json",
        "",
        "[]",
        r#"{"input_file_id": 5, "endpoint": "/v1/chat/completions", "completion_window": "24h"}"#,
        r#"{"endpoint": "/v1/chat/completions", "completion_window": "24h"}"#,
    ] {
        expect_error(batches().body(body), 400).await;
    }
    let (_, list) = gw.get("/v1/files").await.unwrap();
    assert_eq!(list["data"], json!([]), "nothing half-uploaded is listed");
    assert!(files_under(&gw.data_dir().join("blobs")).is_empty());
}

#[tokio::test]
async fn garbage_path_segments_are_client_errors() {
    let gw = gateway().await;
    let long = format!("/v1/files/file-{}", "A".repeat(10_000));
    let cases = [
        (Method::GET, "/v1/files/%FF%FE"),
        (Method::GET, "/v1/files/%FF%FE/content"),
        (Method::DELETE, "/v1/files/%FF%FE"),
        (Method::GET, "/files/%C3%28"),
        (Method::GET, "/v1/files/%00"),
        (Method::GET, "/v1/files/file-%2F..%2Fetc"),
        (Method::GET, "/v1/batches/%FF%FE"),
        (Method::POST, "/v1/batches/%FF%FE/cancel"),
        (Method::GET, long.as_str()),
    ];
    for (method, path) in cases {
        let (status, rid, body) =
            parts(authed(&gw, method.clone(), path).send().await.unwrap()).await;
        assert!(
            (400..500).contains(&status),
            "{method} {path}: {status} {body}"
        );
        assert!(!rid.is_empty());
        assert_error_envelope(&body);
    }
    let (status, _) = gw.get("/health/readiness").await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sigterm_finishes_the_upload_in_flight_and_exits_zero() {
    let mut gw = gateway().await;
    let spool = gw.data_dir().join("spool");
    // A file-first upload whose body arrives in two halves.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let head = format!(
        "--B0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"late.jsonl\"\r\n\r\n{}",
        JSONL.repeat(100)
    );
    let tail = format!(
        "{}\r\n--B0\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--B0--\r\n",
        JSONL
    );
    let body = reqwest::Body::wrap_stream(channel_body(rx));
    let request = authed(&gw, Method::POST, "/v1/files")
        .header("content-type", "multipart/form-data; boundary=B0")
        .body(body)
        .send();
    let upload = tokio::spawn(request);
    tx.send(Ok(head.into_bytes())).await.unwrap();
    // The gateway is reading the file part once its spool file exists.
    let deadline = Instant::now() + Duration::from_secs(30);
    while files_under(&spool).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (exit, response) = tokio::join!(gw.terminate(), async move {
        tx.send(Ok(tail.into_bytes())).await.unwrap();
        drop(tx);
        upload.await.unwrap().unwrap()
    });
    let (status, _, file) = parts(response).await;
    assert_eq!(status, 200, "the request in flight completes: {file}");
    assert_eq!(file["bytes"], JSONL.len() * 101);
    let exit = exit.unwrap();
    assert!(exit.success(), "graceful stop exits 0: {exit:?}");

    gw.restart().await.unwrap();
    let (status, got) = gw
        .get(&format!("/v1/files/{}", file["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!((status, &got), (200, &file));
    assert!(gw.terminate().await.unwrap().success());
}

fn channel_body(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

const NO_KEY_CONFIG: &str = "model_list:\n- model_name: m\n  litellm_params:\n    model: hosted_vllm/x\n    api_base: http://127.0.0.1:9\n";

#[tokio::test]
async fn no_master_key_refuses_to_start_unless_insecure() {
    for cfg in [
        NO_KEY_CONFIG.to_string(),
        format!("{NO_KEY_CONFIG}general_settings:\n  master_key: ''\n"),
    ] {
        let (status, stderr) = run_until_exit(&cfg, &[], &[]).await.unwrap();
        assert!(!status.success(), "{status:?}");
        assert!(stderr.contains("master_key"), "{stderr}");
    }

    let gw = Gateway::start_with(NO_KEY_CONFIG, &["--insecure-no-auth"], &[])
        .await
        .unwrap();
    let (status, _, list) = parts(req(&gw, Method::GET, "/v1/files").send().await.unwrap()).await;
    assert_eq!(status, 200, "{list}");
    let part = reqwest::multipart::Part::bytes(JSONL.as_bytes().to_vec()).file_name("a.jsonl");
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part("file", part);
    let (status, _, file) = parts(
        req(&gw, Method::POST, "/v1/files")
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{file}");
    let (status, _, got) = parts(
        req(
            &gw,
            Method::GET,
            &format!("/v1/files/{}", file["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((status, got), (200, file));
}
