//! The Batch API surface against the real binary: create-time checks,
//! listing and pagination, unknown ids, and the `/batches` alias.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use batchgate_tests::one_model::{chat_batch, gateway, id, mock, CHAT, MODEL, WAIT};
use batchgate_tests::{assert_error_envelope, chat_lines, config, Gateway, MASTER_KEY};
use serde_json::{json, Value};

#[tokio::test]
async fn create_rejects_bad_endpoint_window_and_metadata() {
    let mock = mock(0).await;
    let gw = gateway(&mock, &[], "").await;
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, 1))
        .await
        .unwrap();
    let create = |body: Value| {
        let gw = &gw;
        async move { gw.post("/v1/batches", &body).await.unwrap() }
    };
    let base = json!({"input_file_id": id(&file), "endpoint": CHAT, "completion_window": "24h"});
    let with = |key: &str, value: Value| {
        let mut b = base.clone();
        b[key] = value;
        b
    };

    let (status, body) = create(with("endpoint", json!("/v1/moderations"))).await;
    assert_eq!(status, 400, "{body}");
    assert_error_envelope(&body);
    assert_eq!(body["error"]["param"], "endpoint");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let (status, body) = create(with("completion_window", json!("48h"))).await;
    assert_eq!(status, 400, "{body}");
    assert_error_envelope(&body);
    assert_eq!(body["error"]["param"], "completion_window");

    let meta =
        |pairs: usize| Value::Object((0..pairs).map(|i| (format!("k{i}"), json!("v"))).collect());
    let (status, body) = create(with("metadata", meta(17))).await;
    assert_eq!(status, 400, "{body}");
    assert_error_envelope(&body);
    assert_eq!(body["error"]["param"], "metadata");

    // 16 pairs is the limit, and they are kept.
    let (status, body) = create(with("metadata", meta(16))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"], meta(16));
    let done = gw.wait_batch(id(&body), WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["metadata"], meta(16));
}

#[tokio::test]
async fn list_is_newest_first_and_paginates() {
    let mock = mock(0).await;
    let gw = gateway(&mock, &[], "").await;
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, 1))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id(&gw.create_batch(id(&file), CHAT, "24h").await.unwrap()).to_string());
    }
    let ids_of = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    };
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let (status, all) = gw.get("/v1/batches").await.unwrap();
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["object"], "list");
    assert_eq!(ids_of(&all), newest_first);
    assert_eq!(all["has_more"], false);

    let (_, first) = gw.get("/v1/batches?limit=2").await.unwrap();
    assert_eq!(ids_of(&first), newest_first[..2]);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["first_id"], newest_first[0].as_str());
    assert_eq!(first["last_id"], newest_first[1].as_str());

    let (_, second) = gw
        .get(&format!("/v1/batches?limit=2&after={}", newest_first[1]))
        .await
        .unwrap();
    assert_eq!(ids_of(&second), newest_first[2..]);
    assert_eq!(second["has_more"], false);

    let (status, past_end) = gw
        .get(&format!("/v1/batches?limit=2&after={}", newest_first[2]))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(ids_of(&past_end).is_empty());
    assert_eq!(past_end["has_more"], false);

    for b in &ids {
        assert_eq!(gw.wait_batch(b, WAIT).await.unwrap()["status"], "completed");
    }
}

#[tokio::test]
async fn unknown_or_edited_batch_ids_are_not_found() {
    let mock = mock(0).await;
    let gw = gateway(&mock, &[], "").await;
    let created = chat_batch(&gw, 1, "24h").await;
    let real = id(&created).to_string();

    // Change one character in the middle of a real ID.
    let mut chars: Vec<char> = real.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'a' { 'b' } else { 'a' };
    let edited: String = chars.into_iter().collect();
    for bad in [edited.as_str(), "batch_abc123", "batch_", "file-abc"] {
        let (status, body) = gw.get(&format!("/v1/batches/{bad}")).await.unwrap();
        assert_eq!(status, 404, "{bad}: {body}");
        assert_error_envelope(&body);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let (status, body) = gw
            .post(&format!("/v1/batches/{bad}/cancel"), &json!({}))
            .await
            .unwrap();
        assert_eq!(status, 404, "{bad}: {body}");
        assert_error_envelope(&body);
    }
    assert_eq!(
        gw.wait_batch(&real, WAIT).await.unwrap()["status"],
        "completed"
    );
}

#[tokio::test]
async fn batches_route_without_v1_prefix_works() {
    let mock = mock(0).await;
    let gw = Gateway::start(&config(&[(MODEL, &mock.base_url())], ""))
        .await
        .unwrap();
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, 3))
        .await
        .unwrap();
    let r = gw
        .http
        .post(gw.url("/batches"))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"input_file_id": id(&file), "endpoint": CHAT, "completion_window": "24h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["object"], "batch");

    let done = gw.wait_batch(id(&created), WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let (status, again) = gw.get(&format!("/batches/{}", id(&created))).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(again, done);
    let (status, list) = gw.get("/batches").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(list["data"][0]["id"], id(&created));
}
