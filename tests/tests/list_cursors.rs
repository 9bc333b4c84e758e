//! Listing cursors never leak across owners: `after=<an ID the caller may
//! not see>` answers exactly what an unknown `after` answers, for files and
//! batches, from the gateway's catalog and from a forwarded upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_tests::{chat_lines, config, list_ids, Gateway, MockConfig, MockVllm, MASTER_KEY};
use reqwest::Method;
use serde_json::{json, Value};

/// A client holding one virtual key.
struct As<'a> {
    gw: &'a Gateway,
    key: String,
}

impl As<'_> {
    async fn new<'a>(gw: &'a Gateway, team: &str) -> As<'a> {
        let (status, k) = gw
            .post("/key/generate", &json!({ "team_id": team }))
            .await
            .unwrap();
        assert_eq!(status, 200, "{k}");
        As {
            gw,
            key: k["key"].as_str().unwrap().to_string(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .gw
            .http
            .request(method, self.gw.url(path))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn upload(&self, model: &str) -> String {
        let part = reqwest::multipart::Part::bytes(chat_lines(model, 1)).file_name("in.jsonl");
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part("file", part);
        let r = self
            .gw
            .http
            .post(self.gw.url("/v1/files"))
            .bearer_auth(&self.key)
            .header("x-litellm-model", model)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let file: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{file}");
        file["id"].as_str().unwrap().to_string()
    }

    async fn batch(&self, model: &str) -> String {
        let file = self.upload(model).await;
        let body = json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
        let (status, batch) = self.call(Method::POST, "/v1/batches", Some(body)).await;
        assert_eq!(status, 200, "{batch}");
        batch["id"].as_str().unwrap().to_string()
    }

    async fn list(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }
}

/// Lists `base` as `me` with `after=<theirs>` and with `after=<unknown>`:
/// both answers must be identical, and (a check that the test can see the
/// leak at all) listing after one of `me`'s own IDs does page.
async fn assert_cursor_is_opaque(me: &As<'_>, base: &str, theirs: &str, mine: &str) {
    let sep = if base.contains('?') { '&' } else { '?' };
    let foreign = me.list(&format!("{base}{sep}after={theirs}")).await;
    let unknown_id = format!("{}Zz", &theirs[..theirs.len() - 2]);
    let unknown = me.list(&format!("{base}{sep}after={unknown_id}")).await;
    assert_eq!(unknown.0, 200, "{}", unknown.1);
    assert_eq!(
        foreign, unknown,
        "{base}: another owner's cursor answers differently from an unknown one"
    );
    let (status, own) = me.list(&format!("{base}{sep}after={mine}")).await;
    assert_eq!(status, 200, "{own}");
    assert!(!list_ids(&own).is_empty(), "own cursor pages on: {own}");
}

/// The first ID of a listing as `who`.
async fn first(who: &As<'_>, path: &str) -> String {
    let (status, page) = who.list(path).await;
    assert_eq!(status, 200, "{page}");
    list_ids(&page)[0].clone()
}

/// Three batches, Alice's on both sides of Bob's in the listing order, all
/// ended (so no output file appears later): (Alice's newest, Bob's).
async fn interleaved_batches(
    gw: &Gateway,
    alice: &As<'_>,
    bob: &As<'_>,
    model: &str,
) -> (String, String) {
    let a_old = alice.batch(model).await;
    let b_batch = bob.batch(model).await;
    let a_new = alice.batch(model).await;
    for id in [&a_old, &b_batch, &a_new] {
        gw.wait_batch(id, Duration::from_secs(60)).await.unwrap();
    }
    (a_new, b_batch)
}

#[tokio::test]
async fn another_owners_cursor_pages_like_an_unknown_one() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&config(&[("m", &mock.base_url())], ""))
        .await
        .unwrap();
    let alice = As::new(&gw, "team-a").await;
    let bob = As::new(&gw, "team-b").await;
    let (a_new, b_batch) = interleaved_batches(&gw, &alice, &bob, "m").await;
    let b_file = first(&bob, "/v1/files?purpose=batch").await;
    let a_newest = first(&alice, "/v1/files").await;
    let a_oldest = first(&alice, "/v1/files?order=asc").await;

    assert_cursor_is_opaque(&alice, "/v1/files", &b_file, &a_newest).await;
    assert_cursor_is_opaque(&alice, "/v1/files?order=asc", &b_file, &a_oldest).await;
    assert_cursor_is_opaque(&alice, "/v1/batches", &b_batch, &a_new).await;

    // A deleted file still marks a place for its owner, and only for them.
    let b_gone = bob.upload("m").await;
    let a_last = alice.upload("m").await;
    let b_last = bob.upload("m").await;
    let (status, _) = bob
        .call(Method::DELETE, &format!("/v1/files/{b_gone}"), None)
        .await;
    assert_eq!(status, 200);
    assert_cursor_is_opaque(&alice, "/v1/files?order=asc", &b_gone, &a_oldest).await;
    let after_gone = format!("/v1/files?order=asc&after={b_gone}");
    let (_, own) = bob.list(&after_gone).await;
    assert_eq!(list_ids(&own), std::slice::from_ref(&b_last), "{own}");
    let (_, master) = gw.get(&after_gone).await.unwrap();
    assert_eq!(
        list_ids(&master),
        [a_last, b_last],
        "the master key sees every place"
    );
}

fn front_config(upstream: &str) -> String {
    format!(
        "model_list:\n- model_name: front-model\n  litellm_params:\n    model: hosted_vllm/back-model\n    api_base: {upstream}/v1\n    api_key: {MASTER_KEY}\n    batch_api: upstream\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
    )
}

#[tokio::test]
async fn forwarded_listings_do_not_page_from_another_owners_cursor() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let back = Gateway::start(&config(&[("back-model", &mock.base_url())], ""))
        .await
        .unwrap();
    let front = Gateway::start(&front_config(&back.base)).await.unwrap();
    let alice = As::new(&front, "team-a").await;
    let bob = As::new(&front, "team-b").await;
    let (a_new, b_batch) = interleaved_batches(&front, &alice, &bob, "front-model").await;
    let files = "/v1/files?model=front-model";
    let b_file = first(&bob, &format!("{files}&purpose=batch")).await;
    let a_newest = first(&alice, files).await;
    let a_oldest = first(&alice, &format!("{files}&order=asc")).await;

    assert_cursor_is_opaque(&alice, files, &b_file, &a_newest).await;
    assert_cursor_is_opaque(&alice, &format!("{files}&order=asc"), &b_file, &a_oldest).await;
    assert_cursor_is_opaque(&alice, "/v1/batches?model=front-model", &b_batch, &a_new).await;
}
