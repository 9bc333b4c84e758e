//! The Files API against the real binary: uploads (curl's and the SDK's part
//! orders, model selection, validation, size limit, expiry), listing,
//! content, delete, the `/files` alias, durability and ID integrity.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use batchgate_tests::{
    assert_error_envelope, config, files_under, list_ids as ids, Gateway, MASTER_KEY,
};
use futures::StreamExt;
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const SEED_JSONL: &str = r#"{"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "my-vllm-model", "messages": [{"role": "user", "content": "Hello!"}]}}
{"custom_id": "request-2", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "my-vllm-model", "messages": [{"role": "user", "content": "How are you?"}]}}
"#;

const THIRTY_DAYS: i64 = 30 * 24 * 3600;
/// Uploads never reach the upstream, so it need not exist.
const NOWHERE: &str = "http://127.0.0.1:9";

/// One multipart part, in the order given.
enum P {
    Text(&'static str, &'static str),
    File(&'static str, Vec<u8>),
}
use P::Text;

fn purpose(p: &'static str) -> P {
    Text("purpose", p)
}

fn batch() -> P {
    purpose("batch")
}

/// The seed's `batch_requests.jsonl`.
fn seed() -> P {
    P::File("batch_requests.jsonl", SEED_JSONL.into())
}

fn expiry(seconds: &'static str) -> [P; 2] {
    [
        Text("expires_after[anchor]", "created_at"),
        Text("expires_after[seconds]", seconds),
    ]
}

async fn start(models: &[(&str, &str)], extra: &str) -> Gateway {
    Gateway::start(&config(models, extra)).await.unwrap()
}

async fn one_model() -> Gateway {
    start(&[("my-vllm-model", NOWHERE)], "").await
}

/// POSTs a multipart form with `parts` in order, plus `headers`.
async fn post_form(
    gw: &Gateway,
    path: &str,
    parts: Vec<P>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = Form::new();
    for p in parts {
        form = match p {
            Text(name, value) => form.text(name, value),
            P::File(name, bytes) => form.part("file", Part::bytes(bytes).file_name(name)),
        };
    }
    let mut req = gw
        .http
        .post(gw.url(path))
        .bearer_auth(MASTER_KEY)
        .multipart(form);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Uploads to `/v1/files`.
async fn up(gw: &Gateway, parts: Vec<P>) -> (u16, Value) {
    post_form(gw, "/v1/files", parts, &[]).await
}

/// Uploads to `/v1/files`, expecting success.
async fn up_ok(gw: &Gateway, parts: Vec<P>) -> Value {
    let (status, file) = up(gw, parts).await;
    assert_eq!(status, 200, "{file}");
    assert_file_object(&file);
    file
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

async fn listed(gw: &Gateway, path: &str) -> Vec<String> {
    let (status, list) = gw.get(path).await.unwrap();
    assert_eq!(status, 200, "{list}");
    ids(&list)
}

fn assert_error((status, body): (u16, Value), want: u16, param: Option<&str>) -> Value {
    assert_eq!(status, want, "{body}");
    assert_error_envelope(&body);
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    if let Some(param) = param {
        assert_eq!(body["error"]["param"], param, "{body}");
    }
    body
}

/// 404 with the envelope for `method path`.
async fn gone(gw: &Gateway, method: Method, path: &str) {
    let answer = gw.call(method, path).await.unwrap();
    assert_error(answer, 404, None);
}

const FILE_KEYS: &str =
    "id object bytes created_at filename purpose status expires_at status_details";

fn assert_file_object(f: &Value) {
    for key in FILE_KEYS.split(' ') {
        assert!(f.get(key).is_some(), "missing {key}: {f}");
    }
    assert_eq!(f["object"], "file", "{f}");
    assert_eq!(f["status"], "processed", "{f}");
    let id = id(f);
    assert!(id.starts_with("file-") && id.len() <= 64, "{id}");
    let url_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    assert!(id.chars().all(url_safe), "not URL-safe: {id}");
}

#[tokio::test]
async fn seed_curl_upload_is_accepted_as_written() {
    let gw = one_model().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("batch_requests.jsonl"), SEED_JSONL).unwrap();
    let out = tokio::process::Command::new("curl")
        .current_dir(dir.path())
        .args(["-s", &gw.url("/v1/files")])
        .args(["-H", "Authorization: Bearer sk-1234"])
        .args(["-H", "x-litellm-model: my-vllm-model"])
        .args(["-F", "purpose=batch", "-F", "file=@batch_requests.jsonl"])
        .output()
        .await;
    let Ok(out) = out else {
        println!("note: no curl binary; skipping the literal curl upload");
        return;
    };
    assert!(out.status.success(), "curl failed: {out:?}");
    let file: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_file_object(&file);
    assert_eq!(file["filename"], "batch_requests.jsonl");
    assert_eq!(file["purpose"], "batch");
    assert_eq!(file["bytes"], SEED_JSONL.len());
    assert_eq!(gw.content(id(&file)).await.unwrap(), SEED_JSONL);
    let (_, got) = gw.get(&format!("/v1/files/{}", id(&file))).await.unwrap();
    assert_eq!(got, file);
}

#[tokio::test]
async fn part_order_does_not_change_the_result() {
    let gw = one_model().await;
    let orders = [
        // Purpose first, as the SDK sends: the file part is streamed through.
        vec![vec![batch()], expiry("7200").into(), vec![seed()]],
        // File first: the file part is spooled until the form is known.
        vec![vec![seed(), batch()], expiry("7200").into()],
        // curl, as typed: purpose, file, then the rest.
        vec![vec![batch(), seed()], expiry("7200").into()],
    ];
    for parts in orders {
        let f = up_ok(&gw, parts.into_iter().flatten().collect()).await;
        assert_eq!(f["filename"], "batch_requests.jsonl");
        assert_eq!(f["purpose"], "batch");
        assert_eq!(f["bytes"], SEED_JSONL.len());
        let lifetime = f["expires_at"].as_i64().unwrap() - f["created_at"].as_i64().unwrap();
        assert_eq!(lifetime, 7200, "{f}");
        assert_eq!(gw.content(id(&f)).await.unwrap(), SEED_JSONL);
    }
    assert_eq!(listed(&gw, "/v1/files").await.len(), 3);
    let blobs = files_under(&gw.data_dir().join("blobs"));
    assert_eq!(blobs.len(), 3, "no leftover copies: {blobs:?}");
}

#[tokio::test]
async fn model_is_taken_from_header_form_field_or_query() {
    let gw = start(&[("alpha", NOWHERE), ("beta", NOWHERE)], "").await;
    let model = |m| Text("model", m);
    let header: &[_] = &[("x-litellm-model", "beta")];
    let cases = [
        ("", vec![batch(), seed()], header, "beta"),
        ("", vec![model("beta"), batch(), seed()], &[], "beta"),
        ("", vec![batch(), seed(), model("alpha")], &[], "alpha"),
        ("", vec![seed(), model("beta"), batch()], &[], "beta"),
        ("?model=alpha", vec![batch(), seed()], &[], "alpha"),
    ];
    for (query, parts, headers, want) in cases {
        let path = format!("/v1/files{query}");
        let (status, file) = post_form(&gw, &path, parts, headers).await;
        assert_eq!(status, 200, "{file}");
        let other = if want == "alpha" { "beta" } else { "alpha" };
        let mine = listed(&gw, &format!("/v1/files?model={want}")).await;
        let theirs = listed(&gw, &format!("/v1/files?model={other}")).await;
        assert!(mine.contains(&id(&file).into()), "{file} under {want}");
        assert!(!theirs.contains(&id(&file).into()), "{file} under {other}");
    }
}

#[tokio::test]
async fn model_selection_errors_name_the_configured_models() {
    let one = one_model().await;
    // With one model configured no model is needed, whatever the order.
    up_ok(&one, vec![batch(), seed()]).await;
    up_ok(&one, vec![seed(), batch()]).await;
    // curl order with the model typed last: the same model stands, an
    // unknown one is refused and nothing of the upload is kept.
    let late = |m| vec![batch(), seed(), Text("model", m)];
    up_ok(&one, late("my-vllm-model")).await;
    let blobs = files_under(&one.data_dir().join("blobs"));
    assert_error(up(&one, late("nope")).await, 400, Some("model"));
    assert_eq!(files_under(&one.data_dir().join("blobs")), blobs);
    assert_eq!(listed(&one, "/v1/files").await.len(), 3);

    let two = start(&[("alpha", NOWHERE), ("beta", NOWHERE)], "").await;
    for parts in [vec![batch(), seed()], vec![seed(), batch()]] {
        let body = assert_error(up(&two, parts).await, 400, Some("model"));
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("alpha") && msg.contains("beta"), "{msg}");
    }
    let unknown = [("x-litellm-model", "gamma")];
    let answer = post_form(&two, "/v1/files", vec![batch(), seed()], &unknown).await;
    let body = assert_error(answer, 400, Some("model"));
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        ["gamma", "alpha", "beta"].iter().all(|m| msg.contains(m)),
        "{msg}"
    );
    assert_eq!(
        listed(&two, "/v1/files").await,
        Vec::<String>::new(),
        "nothing stored"
    );
}

#[tokio::test]
async fn purpose_and_filename_are_validated() {
    let gw = one_model().await;
    assert_error(up(&gw, vec![seed()]).await, 400, Some("purpose"));
    for bad in ["nonsense", "batch_output", ""] {
        let answer = up(&gw, vec![purpose(bad), seed()]).await;
        assert_error(answer, 400, Some("purpose"));
    }
    let txt = || P::File("requests.txt", SEED_JSONL.into());
    for parts in [vec![batch(), txt()], vec![txt(), batch()]] {
        let body = assert_error(up(&gw, parts).await, 400, None);
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("Must be .jsonl"), "{body}");
    }
    assert_error(up(&gw, vec![batch()]).await, 400, Some("file"));
    assert!(listed(&gw, "/v1/files").await.is_empty());
}

#[tokio::test]
async fn oversized_upload_is_refused_and_leaves_nothing_behind() {
    let gw = start(&[("m", NOWHERE)], "  max_file_size_mb: 1\n").await;
    let big = || P::File("big.jsonl", vec![b'x'; 2_000_000]);
    for parts in [vec![batch(), big()], vec![big(), batch()]] {
        assert_error(up(&gw, parts).await, 413, Some("file"));
    }
    assert!(listed(&gw, "/v1/files").await.is_empty());
    for dir in ["blobs", "spool"] {
        let stray = files_under(&gw.data_dir().join(dir));
        assert_eq!(stray, Vec::<PathBuf>::new(), "stray file in {dir}");
    }
    // Just under the limit still works.
    let ok = P::File("ok.jsonl", vec![b'y'; 1_000_000]);
    let f = up_ok(&gw, vec![batch(), ok]).await;
    assert_eq!(f["bytes"], 1_000_000);
}

#[tokio::test]
async fn expiry_follows_expires_after_and_purpose() {
    let gw = one_model().await;
    let with = |[a, b]: [P; 2]| vec![batch(), a, b, seed()];
    for secs in ["3600", "2592000"] {
        let f = up_ok(&gw, with(expiry(secs))).await;
        let want = f["created_at"].as_i64().unwrap() + secs.parse::<i64>().unwrap();
        assert_eq!(f["expires_at"], want, "{f}");
    }
    for secs in ["3599", "2592001", "-1", "soon"] {
        let answer = up(&gw, with(expiry(secs))).await;
        assert_error(answer, 400, Some("expires_after[seconds]"));
    }
    let [_, seconds] = expiry("3600");
    let other_anchor = [Text("expires_after[anchor]", "last_active_at"), seconds];
    assert_error(up(&gw, with(other_anchor)).await, 400, None);

    // expires_after as one JSON field, before or after the file part.
    let json = Text(
        "expires_after",
        r#"{"anchor": "created_at", "seconds": 7200}"#,
    );
    let json_late = Text(
        "expires_after",
        r#"{"anchor":"created_at","seconds":"7200"}"#,
    );
    for parts in [
        vec![batch(), json, seed()],
        vec![batch(), seed(), json_late],
    ] {
        let f = up_ok(&gw, parts).await;
        assert_eq!(
            f["expires_at"],
            f["created_at"].as_i64().unwrap() + 7200,
            "{f}"
        );
    }
    for bad in [
        r#"{"anchor":"created_at","seconds":60}"#,
        r#"{"seconds":3600}"#,
        "3600",
    ] {
        let answer = up(&gw, vec![batch(), Text("expires_after", bad), seed()]).await;
        let (status, body) = &answer;
        assert_eq!(*status, 400, "{bad}: {body}");
        assert!(
            body["error"]["param"]
                .as_str()
                .unwrap_or_default()
                .starts_with("expires_after"),
            "{body}"
        );
    }
    let [a, b] = expiry("3600");
    let both = vec![
        batch(),
        a,
        b,
        Text("expires_after", r#"{"anchor":"created_at","seconds":3600}"#),
        seed(),
    ];
    assert_error(up(&gw, both).await, 400, Some("expires_after"));

    let f = up_ok(&gw, vec![batch(), seed()]).await;
    let thirty_days_on = f["created_at"].as_i64().unwrap() + THIRTY_DAYS;
    assert_eq!(f["expires_at"], thirty_days_on, "{f}");
    let notes = P::File("notes.txt", b"hi".to_vec());
    let f = up_ok(&gw, vec![purpose("user_data"), notes]).await;
    assert_eq!(f["purpose"], "user_data");
    assert!(f["expires_at"].is_null(), "{f}");
    let (_, got) = gw.get(&format!("/v1/files/{}", id(&f))).await.unwrap();
    assert!(got["expires_at"].is_null(), "{got}");
    assert!(got["status_details"].is_null(), "{got}");
}

#[tokio::test]
async fn list_pages_filters_and_orders() {
    let gw = one_model().await;
    let mut uploaded = vec![];
    for i in 0..5 {
        let bytes = vec![b'a'; i + 1];
        let parts = match i % 2 {
            0 => vec![batch(), P::File("b.jsonl", bytes)],
            _ => vec![purpose("user_data"), P::File("u.txt", bytes)],
        };
        let f = up_ok(&gw, parts).await;
        uploaded.push(id(&f).to_string());
    }
    let newest_first: Vec<String> = uploaded.iter().rev().cloned().collect();

    let (_, all) = gw.get("/v1/files").await.unwrap();
    assert_eq!(all["object"], "list");
    assert_eq!(ids(&all), newest_first, "default order is newest first");
    assert_eq!(all["has_more"], false);
    assert_eq!(all["first_id"], json!(newest_first[0]));
    assert_eq!(all["last_id"], json!(newest_first[4]));

    // Page through with limit=2 the way the SDK does.
    let (mut seen, mut path) = (vec![], "/v1/files?limit=2".to_string());
    loop {
        let (_, page) = gw.get(&path).await.unwrap();
        let page_ids = ids(&page);
        assert_eq!(page["first_id"], json!(page_ids.first()));
        assert_eq!(page["last_id"], json!(page_ids.last()));
        seen.extend(page_ids.clone());
        if page["has_more"] == false {
            break;
        }
        assert_eq!(page_ids.len(), 2);
        path = format!("/v1/files?limit=2&after={}", page_ids[1]);
    }
    assert_eq!(seen, newest_first);
    // Older SDKs keep asking after the last ID: the answer is an empty page.
    let path = format!("/v1/files?limit=2&after={}", newest_first[4]);
    let (status, tail) = gw.get(&path).await.unwrap();
    assert_eq!(status, 200);
    let empty =
        json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false});
    assert_eq!(tail, empty);

    assert_eq!(listed(&gw, "/v1/files?order=asc").await, uploaded);
    let path = format!("/v1/files?order=asc&limit=1&after={}", uploaded[1]);
    let (_, asc) = gw.get(&path).await.unwrap();
    assert_eq!(ids(&asc), [uploaded[2].clone()]);
    assert_eq!(asc["has_more"], true);
    let pick = |i: &[usize]| i.iter().map(|&i| uploaded[i].clone()).collect::<Vec<_>>();
    let batch_only = listed(&gw, "/v1/files?purpose=batch").await;
    assert_eq!(batch_only, pick(&[4, 2, 0]));
    let user = listed(&gw, "/v1/files?purpose=user_data&order=asc").await;
    assert_eq!(user, pick(&[1, 3]));

    for bad in ["limit=0", "limit=10001", "limit=ten"] {
        let answer = gw.get(&format!("/v1/files?{bad}")).await.unwrap();
        assert_error(answer, 400, Some("limit"));
    }
    assert_eq!(listed(&gw, "/v1/files?limit=10000").await.len(), 5);
    let answer = gw.get("/v1/files?order=sideways").await.unwrap();
    assert_error(answer, 400, Some("order"));
}

#[tokio::test]
async fn content_streams_exact_bytes_of_a_large_file() {
    let gw = one_model().await;
    // 20 MB of deterministic pseudo-random bytes (xorshift).
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    };
    let data: Vec<u8> = (0..20_000_000).map(|_| next()).collect();
    let want = Sha256::digest(&data);
    let f = up_ok(&gw, vec![purpose("user_data"), P::File("big.bin", data)]).await;
    assert_eq!(f["bytes"], 20_000_000);
    let url = gw.url(&format!("/v1/files/{}/content", id(&f)));
    let r = gw
        .http
        .get(url)
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(20_000_000));
    let (mut hasher, mut total) = (Sha256::new(), 0);
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        total += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(total, 20_000_000);
    assert_eq!(hasher.finalize(), want);
}

/// Create, retrieve, list, content, delete under `prefix` ("/v1" or "").
async fn file_lifecycle(gw: &Gateway, prefix: &str, blobs: &Path) {
    let before = files_under(blobs);
    let files = format!("{prefix}/files");
    let (status, f) = post_form(gw, &files, vec![batch(), seed()], &[]).await;
    assert_eq!(status, 200, "{f}");
    let (one, path) = (id(&f).to_string(), format!("{prefix}/files/{}", id(&f)));
    assert_eq!(
        files_under(blobs).len(),
        before.len() + 1,
        "one blob per upload"
    );

    assert_eq!(gw.get(&path).await.unwrap(), (200, f.clone()));
    assert!(listed(gw, &files).await.contains(&one));
    let (status, bytes) = gw.get_bytes(&format!("{path}/content")).await.unwrap();
    assert_eq!((status, bytes.as_slice()), (200, SEED_JSONL.as_bytes()));

    let deleted = json!({"id": one, "object": "file", "deleted": true});
    let answer = gw.call(Method::DELETE, &path).await.unwrap();
    assert_eq!(answer, (200, deleted));
    assert_eq!(
        files_under(blobs),
        before,
        "the blob is removed with the file"
    );
    gone(gw, Method::GET, &path).await;
    gone(gw, Method::GET, &format!("{path}/content")).await;
    assert!(!listed(gw, &files).await.contains(&one));
    gone(gw, Method::DELETE, &path).await;
}

#[tokio::test]
async fn delete_removes_metadata_and_bytes_with_and_without_v1() {
    let gw = one_model().await;
    let blobs = gw.data_dir().join("blobs");
    file_lifecycle(&gw, "/v1", &blobs).await;
    file_lifecycle(&gw, "", &blobs).await;
    // Objects are the same whichever prefix is used.
    let (_, f) = post_form(&gw, "/files", vec![batch(), seed()], &[]).await;
    let path = format!("/v1/files/{}", id(&f));
    assert_eq!(gw.get(&path).await.unwrap(), (200, f.clone()));
}

#[tokio::test]
async fn an_acknowledged_upload_survives_sigkill() {
    let mut gw = one_model().await;
    let f = up_ok(&gw, vec![batch(), seed()]).await;
    gw.restart().await.unwrap();
    let path = format!("/v1/files/{}", id(&f));
    assert_eq!(gw.get(&path).await.unwrap(), (200, f.clone()));
    assert_eq!(gw.content(id(&f)).await.unwrap(), SEED_JSONL);
    assert_eq!(listed(&gw, "/v1/files").await, [id(&f).to_string()]);
}

#[tokio::test]
async fn forged_and_foreign_ids_are_not_found() {
    let gw = one_model().await;
    let f = up_ok(&gw, vec![batch(), seed()]).await;
    let real = id(&f);
    let forge = |i: usize| {
        let mut c: Vec<char> = real.chars().collect();
        c[i] = if c[i] == 'A' { 'B' } else { 'A' };
        c.into_iter().collect::<String>()
    };
    // Each character after the prefix, flipped in turn.
    for i in "file-".len()..real.len() {
        gone(&gw, Method::GET, &format!("/v1/files/{}", forge(i))).await;
    }
    let forged = forge(real.len() / 2);
    gone(&gw, Method::GET, &format!("/v1/files/{forged}/content")).await;
    gone(&gw, Method::DELETE, &format!("/v1/files/{forged}")).await;
    for junk in ["file-abc", "file-", "batch_abc", "x"] {
        gone(&gw, Method::GET, &format!("/v1/files/{junk}")).await;
    }
    let original = gw.content(real).await.unwrap();
    assert_eq!(original, SEED_JSONL, "the original is untouched");

    // Same config, another data dir, hence another ID secret.
    let other = one_model().await;
    let path = format!("/v1/files/{real}");
    gone(&other, Method::GET, &path).await;
    gone(&other, Method::GET, &format!("{path}/content")).await;
    gone(&other, Method::DELETE, &path).await;
    assert_eq!(gw.get(&path).await.unwrap().0, 200);
}
