//! `POST /v1/batches/{id}/retry`, batchgate's extension: a new batch over
//! an ended batch's failed lines — by default those that failed for a
//! reason other than the request itself, all of them with `{"all": true}`,
//! the lines a cancel left unrun — taken from the input file in order,
//! linked by `metadata.retry_of`, under the original's ownership.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use batchgate_tests::{
    assert_error_envelope, chat_lines, config, custom_ids_of, Faults, Gateway, MockConfig,
    MockVllm, MASTER_KEY,
};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// One attempt per line and no outage pause: a line the upstream answers
/// 500 goes straight to the error file.
const ONE_ATTEMPT: &str =
    "batch_settings:\n  max_attempts: 1\n  outage_threshold: 100000\n  initial_backoff_ms: 10\n";

fn chat_line(id: &str, extra: Value) -> String {
    let mut body =
        json!({"model": "m", "messages": [{"role": "user", "content": format!("{id} says hi")}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions", "body": body})
        .to_string()
}

async fn retry(gw: &Gateway, id: &str, body: Option<&Value>) -> (u16, Value) {
    gw.call_as(
        MASTER_KEY,
        Method::POST,
        &format!("/v1/batches/{id}/retry"),
        body,
    )
    .await
    .unwrap()
}

async fn create_with_metadata(gw: &Gateway, content: Vec<u8>, metadata: Value) -> Value {
    let file = gw.upload("m", "in.jsonl", content).await.unwrap();
    let (status, b) = gw
        .post(
            "/v1/batches",
            &json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions",
                    "completion_window": "24h", "metadata": metadata}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{b}");
    b
}

#[tokio::test]
async fn retry_sends_again_what_the_upstream_failed_and_everything_when_asked() {
    // Every body fails its first attempt with a 500; later attempts pass,
    // except req-5's, which the upstream refuses (n is out of range).
    let faults = Faults {
        fail_first_n: 1,
        ..Faults::default()
    };
    let mock = MockVllm::start(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let gw = Gateway::start(&config(&[("m", &mock.base_url())], ONE_ATTEMPT))
        .await
        .unwrap();
    let lines: Vec<String> = (1..=4)
        .map(|i| chat_line(&format!("req-{i}"), json!({})))
        .chain([chat_line("req-5", json!({"n": 999}))])
        .collect();
    // A blank line in the middle is skipped, not copied.
    let input = format!("{}\n\n{}\n", lines[..2].join("\n"), lines[2..].join("\n"));
    let a = create_with_metadata(&gw, input.into_bytes(), json!({"project": "p1"})).await;
    let a_id = a["id"].as_str().unwrap();
    let a = gw.wait_batch(a_id, WAIT).await.unwrap();
    assert_eq!(a["request_counts"]["failed"], 5, "{a}");

    // Default: the five 500s are the upstream's fault, so all five again,
    // in input order, byte for byte.
    let (status, b) = retry(&gw, a_id, None).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["status"], "validating");
    assert_eq!(b["metadata"]["retry_of"], a_id);
    assert_eq!(b["metadata"]["project"], "p1");
    assert_eq!(b["endpoint"], a["endpoint"]);
    assert_ne!(b["input_file_id"], a["input_file_id"]);
    let b_input = b["input_file_id"].as_str().unwrap();
    assert_eq!(gw.content(b_input).await.unwrap(), lines.join("\n") + "\n");
    let (_, file) = gw.get(&format!("/v1/files/{b_input}")).await.unwrap();
    assert_eq!(file["purpose"], "batch", "{file}");

    let b = gw
        .wait_batch(b["id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(b["status"], "completed", "{b}");
    assert_eq!(b["request_counts"]["completed"], 4, "{b}");
    assert_eq!(b["request_counts"]["failed"], 1, "{b}");
    let b_id = b["id"].as_str().unwrap();

    // req-5 was refused for itself: not retried by default …
    let (status, err) = retry(&gw, b_id, Some(&json!({}))).await;
    assert_eq!(status, 400, "{err}");
    assert_error_envelope(&err);
    assert_eq!(err["error"]["code"], "nothing_to_retry");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"all\""),
        "{err}"
    );
    // … but with all, it is (alone).
    let (status, c) = retry(&gw, b_id, Some(&json!({"all": true}))).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["metadata"]["retry_of"], b_id);
    let c_input = gw.content(c["input_file_id"].as_str().unwrap()).await;
    assert_eq!(c_input.unwrap(), lines[4].clone() + "\n");
    // The listing shows all three, the retries newest first.
    let (_, page) = gw.get("/v1/batches").await.unwrap();
    let ids = batchgate_tests::list_ids(&page);
    assert_eq!(ids[..3], [c["id"].as_str().unwrap(), b_id, a_id]);
}

#[tokio::test]
async fn a_cancelled_batch_retries_the_lines_that_never_ran() {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(300),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let entry = format!(
        "model_list:\n- model_name: m\n  litellm_params:\n    model: hosted_vllm/{}\n    api_base: {}\n    max_parallel_requests: 1\ngeneral_settings:\n  master_key: {MASTER_KEY}\nbatch_settings:\n  cancel_grace_seconds: 5\n",
        batchgate_tests::MockConfig::default().models[0],
        mock.base_url()
    );
    let gw = Gateway::start(&entry).await.unwrap();
    let file = gw
        .upload("m", "in.jsonl", chat_lines("m", 30))
        .await
        .unwrap();
    let a = gw
        .create_batch(file["id"].as_str().unwrap(), "/v1/chat/completions", "24h")
        .await
        .unwrap();
    let a_id = a["id"].as_str().unwrap();
    gw.wait_batch_until(a_id, WAIT, |b| {
        b["request_counts"]["completed"].as_u64() >= Some(2)
    })
    .await
    .unwrap();

    // Not ended yet: 409.
    let (status, err) = retry(&gw, a_id, None).await;
    assert_eq!(status, 409, "{err}");
    assert_error_envelope(&err);

    let (status, _) = gw
        .post(&format!("/v1/batches/{a_id}/cancel"), &json!({}))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let a = gw.wait_batch(a_id, WAIT).await.unwrap();
    assert_eq!(a["status"], "cancelled", "{a}");
    let (out, errs) = gw.results(&a).await.unwrap();
    assert!(errs.is_empty(), "{errs:?}");
    let ran: HashSet<String> = custom_ids_of(&out).into_iter().collect();
    assert!(!ran.is_empty() && ran.len() < 30, "{} ran", ran.len());

    let (status, b) = retry(&gw, a_id, None).await;
    assert_eq!(status, 200, "{b}");
    let b_lines = gw.jsonl(b["input_file_id"].as_str()).await.unwrap();
    let expected: Vec<String> = (1..=30)
        .map(|i| format!("req-{i}"))
        .filter(|id| !ran.contains(id))
        .collect();
    assert_eq!(custom_ids_of(&b_lines), expected);
    // The new batch runs them: together the two cover every line once.
    let (_, cancel) = gw
        .post(
            &format!("/v1/batches/{}/cancel", b["id"].as_str().unwrap()),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(cancel["status"], "cancelling", "{cancel}");
}

#[tokio::test]
async fn retry_refuses_what_it_cannot_do() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&config(&[("m", &mock.base_url())], ""))
        .await
        .unwrap();
    let done = gw
        .run_chat_batch("m", chat_lines("m", 3), WAIT)
        .await
        .unwrap();
    let id = done["id"].as_str().unwrap();
    assert_eq!(done["status"], "completed");

    // Nothing failed: nothing to retry, with or without all.
    for body in [None, Some(json!({"all": true}))] {
        let (status, err) = retry(&gw, id, body.as_ref()).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["code"], "nothing_to_retry", "{err}");
    }
    // Malformed bodies and unknown batches.
    for body in [
        json!({"all": "yes"}),
        json!({"everything": true}),
        json!([]),
    ] {
        let (status, err) = retry(&gw, id, Some(&body)).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_error_envelope(&err);
    }
    let (status, err) = retry(&gw, "batch_nope", None).await;
    assert_eq!(status, 404, "{err}");
    assert_error_envelope(&err);
    let (status, _) = gw
        .call(Method::GET, &format!("/v1/batches/{id}/retry"))
        .await
        .unwrap();
    assert_eq!(status, 405);
}

#[tokio::test]
async fn retry_keeps_ownership_and_refuses_strangers() {
    let mock = MockVllm::start(MockConfig {
        faults: Faults {
            fail_first_n: 1,
            ..Faults::default()
        },
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let gw = Gateway::start(&config(&[("m", &mock.base_url())], ONE_ATTEMPT))
        .await
        .unwrap();
    let owner = gw.new_key(&json!({"team_id": "t1"})).await.unwrap();
    let stranger = gw.new_key(&json!({"team_id": "t2"})).await.unwrap();
    let narrow = gw
        .new_key(&json!({"team_id": "t1", "models": ["other"]}))
        .await
        .unwrap();
    let file = gw.upload_as(&owner, "m", chat_lines("m", 3)).await.unwrap();
    let (status, a) = gw
        .call_as(
            &owner,
            Method::POST,
            "/v1/batches",
            Some(&json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{a}");
    let a_id = a["id"].as_str().unwrap();
    let a = gw.wait_batch(a_id, WAIT).await.unwrap();
    assert_eq!(a["request_counts"]["failed"], 3, "{a}");

    let path = format!("/v1/batches/{a_id}/retry");
    let (status, err) = gw
        .call_as(&stranger, Method::POST, &path, None)
        .await
        .unwrap();
    assert_eq!(status, 404, "{err}");
    assert_error_envelope(&err);
    // A teammate sees the batch but may not use its model.
    let (status, err) = gw
        .call_as(&narrow, Method::POST, &path, None)
        .await
        .unwrap();
    assert_eq!(status, 403, "{err}");

    // The master retries it: the retry is the owner's, not the master's.
    let (status, b) = retry(&gw, a_id, None).await;
    assert_eq!(status, 200, "{b}");
    let b_path = format!("/v1/batches/{}", b["id"].as_str().unwrap());
    let (status, _) = gw
        .call_as(&owner, Method::GET, &b_path, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, _) = gw
        .call_as(&stranger, Method::GET, &b_path, None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    let input_path = format!("/v1/files/{}", b["input_file_id"].as_str().unwrap());
    let (status, _) = gw
        .call_as(&owner, Method::GET, &input_path, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let b = gw
        .wait_batch(b["id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(b["request_counts"]["completed"], 3, "{b}");

    // The owner may retry its own batch, too.
    let (status, c) = gw.call_as(&owner, Method::POST, &path, None).await.unwrap();
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["metadata"]["retry_of"], a_id);

    // Once the input file is gone, nothing can be retried from it.
    let input = a["input_file_id"].as_str().unwrap();
    let (status, _) = gw.http_delete(&format!("/v1/files/{input}")).await.unwrap();
    assert_eq!(status, 200);
    let (status, err) = retry(&gw, a_id, None).await;
    assert_eq!(status, 400, "{err}");
    assert_error_envelope(&err);
    assert_eq!(err["error"]["code"], "file_not_found", "{err}");
}

#[tokio::test]
async fn a_forwarded_batch_is_refused_with_a_clear_400() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let back = Gateway::start(&config(&[("back-model", &mock.base_url())], ""))
        .await
        .unwrap();
    let front = Gateway::start(&format!(
        "model_list:\n- model_name: front-model\n  litellm_params:\n    model: hosted_vllm/back-model\n    api_base: {}/v1\n    api_key: {MASTER_KEY}\n    batch_api: upstream\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        back.base
    ))
    .await
    .unwrap();
    let done = front
        .run_chat_batch("front-model", chat_lines("back-model", 2), WAIT)
        .await
        .unwrap();
    let (status, err) = retry(&front, done["id"].as_str().unwrap(), None).await;
    assert_eq!(status, 400, "{err}");
    assert_error_envelope(&err);
    assert_eq!(err["error"]["code"], "retry_not_supported", "{err}");
    // A stranger still gets the 404 first.
    let key = front.new_key(&json!({})).await.unwrap();
    let path = format!("/v1/batches/{}/retry", done["id"].as_str().unwrap());
    let (status, _) = front
        .call_as(&key, Method::POST, &path, None)
        .await
        .unwrap();
    assert_eq!(status, 404);
}
