//! What the web console relies on from the binary: its files at `/ui`
//! without a key, `GET /fleet`, and the `owner` of listed batches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_tests::{chat_lines, config, Gateway, MockConfig, MockVllm};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn the_console_is_served_without_a_key_and_its_data_needs_one() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&config(&[("m", &mock.base_url())], ""))
        .await
        .unwrap();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = plain.get(gw.url("/ui")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    let r = plain.get(gw.url("/ui/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.headers().contains_key("content-security-policy"));
    assert!(
        r.headers().contains_key("x-request-id"),
        "the server's layers apply"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("app.js"));
    let r = plain
        .get(gw.url("/ui/views/batch.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        plain.get(gw.url("/ui/nope")).send().await.unwrap().status(),
        404
    );

    // The data is not public.
    assert_eq!(
        plain.get(gw.url("/fleet")).send().await.unwrap().status(),
        401
    );
}

#[tokio::test]
async fn fleet_reports_deployments_counts_and_the_instance() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&config(
        &[("a", &mock.base_url()), ("b", &mock.base_url())],
        "",
    ))
    .await
    .unwrap();
    let done = gw
        .run_chat_batch("a", chat_lines("a", 2), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed");
    let key = gw.new_key(&json!({})).await.unwrap();
    let (status, fleet) = gw.call_as(&key, Method::GET, "/fleet", None).await.unwrap();
    assert_eq!(status, 200, "{fleet}");
    let deps = fleet["deployments"].as_array().unwrap();
    assert_eq!(deps.len(), 2, "{fleet}");
    for d in deps {
        assert!(
            d["id"].is_string() && d["api_base"] == mock.base_url().as_str(),
            "{d}"
        );
        assert_eq!(d["in_flight"], 0, "{d}");
        assert!(d["paused_since"].is_null(), "{d}");
        assert!(d["max_parallel_requests"].as_u64().unwrap() >= 1);
        // Alone, this instance's ceiling is the whole limit; the adaptive
        // limit starts below it.
        let c = &d["concurrency"];
        assert_eq!(c["ceiling"], d["max_parallel_requests"], "{d}");
        assert_eq!(c["adaptive"], true, "{d}");
        let limit = c["limit"].as_u64().unwrap();
        assert!(limit >= 1 && Some(limit) <= c["ceiling"].as_u64(), "{d}");
        assert!(c["queue_estimate"].as_f64().is_some(), "{d}");
        assert!(c["requests_per_second"].as_f64() >= Some(0.0), "{d}");
    }
    assert_eq!(fleet["batches"]["completed"], 1, "{fleet}");
    let me = fleet["instance"].as_str().unwrap();
    assert!(!me.is_empty());
    // Holding nothing, this instance is still listed, as itself.
    assert_eq!(fleet["instances"][0]["id"], me, "{fleet}");
    assert_eq!(fleet["instances"][0]["this"], true);
    assert_eq!(fleet["instances"][0]["batches"], 0);
}

#[tokio::test]
async fn fleet_shows_lines_in_flight_and_the_batches_an_instance_holds() {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(300),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let gw = Gateway::start(&config(&[("m", &mock.base_url())], ""))
        .await
        .unwrap();
    let file = gw
        .upload("m", "in.jsonl", chat_lines("m", 200))
        .await
        .unwrap();
    let b = gw
        .create_batch(file["id"].as_str().unwrap(), "/v1/chat/completions", "24h")
        .await
        .unwrap();
    let id = b["id"].as_str().unwrap();
    gw.wait_batch_until(id, Duration::from_secs(60), |b| {
        b["status"] == "in_progress"
    })
    .await
    .unwrap();
    // Polled: between two lines a slot may be free for an instant.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let fleet = loop {
        let (status, fleet) = gw.get("/fleet").await.unwrap();
        assert_eq!(status, 200, "{fleet}");
        if fleet["deployments"][0]["in_flight"].as_u64() > Some(0) {
            break fleet;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never in flight: {fleet}"
        );
    };
    assert_eq!(fleet["instances"][0]["batches"], 1, "{fleet}");
    assert!(fleet["instances"][0]["lease_until"].as_i64() > fleet["now"].as_i64());
    assert!(fleet["queue_depth_lines"].as_u64() > Some(0), "{fleet}");
    let (status, _) = gw
        .post(&format!("/v1/batches/{id}/cancel"), &json!({}))
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn listed_batches_name_their_owner() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&config(&[("m", &mock.base_url())], ""))
        .await
        .unwrap();
    let mine = gw
        .run_chat_batch("m", chat_lines("m", 1), Duration::from_secs(60))
        .await
        .unwrap();
    let key = gw.new_key(&json!({"team_id": "t1"})).await.unwrap();
    let file = gw.upload_as(&key, "m", chat_lines("m", 1)).await.unwrap();
    let body = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let (status, theirs) = gw
        .call_as(&key, Method::POST, "/v1/batches", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 200, "{theirs}");

    let (_, page) = gw.get("/v1/batches").await.unwrap();
    assert_eq!(page["data"][0]["id"], theirs["id"]);
    assert!(page["data"][0]["owner"]["key_id"]
        .as_str()
        .unwrap()
        .starts_with("key_"));
    assert_eq!(page["data"][0]["owner"]["team_id"], "t1");
    assert_eq!(page["data"][1]["id"], mine["id"]);
    assert_eq!(
        page["data"][1]["owner"],
        json!({"key_id": null, "team_id": null})
    );
    // The key sees its own batch only, owner included.
    let (_, own) = gw
        .call_as(&key, Method::GET, "/v1/batches", None)
        .await
        .unwrap();
    assert_eq!(
        batchgate_tests::list_ids(&own),
        [theirs["id"].as_str().unwrap()]
    );
    assert_eq!(own["data"][0]["owner"]["team_id"], "t1");
}
