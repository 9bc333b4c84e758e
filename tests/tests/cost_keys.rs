//! Cost tracking, virtual keys, budgets and per-owner isolation, through
//! the real binary against mock-vllm's deterministic usage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::time::Duration;

use batchgate_cost::Decimal;
use batchgate_mock_vllm::{completion_tokens_of, prompt_tokens_of};
use batchgate_tests::{chat_lines, Gateway, MockConfig, MockVllm, MASTER_KEY};
use reqwest::Method;
use serde_json::{json, Value};

const IN_PRICE: &str = "0.000001";
const OUT_PRICE: &str = "0.000002";

fn priced_config(upstream: &str, extra: &str) -> String {
    format!(
        "model_list:\n- model_name: m\n  litellm_params:\n    model: hosted_vllm/{}\n    api_base: {upstream}\n    max_parallel_requests: 4\n  model_info:\n    input_cost_per_token: {IN_PRICE}\n    output_cost_per_token: {OUT_PRICE}\n- model_name: other\n  litellm_params:\n    model: hosted_vllm/{}\n    api_base: {upstream}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n{extra}",
        MockConfig::default().models[0],
        MockConfig::default().models[0]
    )
}

/// The cost of `lines` computed by hand: batch price = half the regular.
fn expected_cost(lines: &[u8]) -> Decimal {
    let half = Decimal::from_str("0.5").unwrap();
    let (pin, pout) = (
        Decimal::from_str(IN_PRICE).unwrap() * half,
        Decimal::from_str(OUT_PRICE).unwrap() * half,
    );
    let mut total = Decimal::ZERO;
    for line in String::from_utf8_lossy(lines).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        total += Decimal::from(prompt_tokens_of(&v["body"])) * pin
            + Decimal::from(completion_tokens_of(&v["body"])) * pout;
    }
    total
}

struct As<'a> {
    gw: &'a Gateway,
    key: String,
}

impl As<'_> {
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
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn upload(&self, model: &str, content: Vec<u8>) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part(
                "file",
                reqwest::multipart::Part::bytes(content).file_name("in.jsonl"),
            );
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
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, file_id: &str) -> (u16, Value) {
        self.call(Method::POST, "/v1/batches", Some(json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}))).await
    }
}

async fn new_key(gw: &Gateway, body: Value) -> String {
    let (status, k) = gw.post("/key/generate", &body).await.unwrap();
    assert_eq!(status, 200, "{k}");
    k["key"].as_str().unwrap().to_string()
}

async fn key_spend(gw: &Gateway, key: &str) -> Decimal {
    let (_, info) = gw.get(&format!("/key/info?key={key}")).await.unwrap();
    Decimal::from_str(info["info"]["spend"].as_str().unwrap()).unwrap()
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn cost_matches_hand_computation_and_retrieves_never_bill() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&priced_config(&mock.base_url(), ""))
        .await
        .unwrap();
    let key = new_key(&gw, json!({"team_id": "team-a", "key_alias": "alice"})).await;
    let alice = As {
        gw: &gw,
        key: key.clone(),
    };
    let lines = chat_lines("m", 25);
    let (_, file) = alice.upload("m", lines.clone()).await;
    let (_, batch) = alice.create(file["id"].as_str().unwrap()).await;
    let id = batch["id"].as_str().unwrap();
    let done = gw.wait_batch(id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done["status"], "completed");

    let want = expected_cost(&lines);
    eprintln!(
        "hand-computed cost {want}, batchgate reports {}",
        done["cost"]["total"]
    );
    assert_eq!(dec(&done["cost"]["total"]), want);
    assert_eq!(done["cost"]["priced_lines"], 25);
    assert_eq!(done["cost"]["unpriced_lines"], 0);
    assert_eq!(
        dec(&done["cost"]["input"]) + dec(&done["cost"]["output"]),
        want
    );

    // The header carries the same figure; ten retrieves change nothing.
    for _ in 0..10 {
        let r = gw
            .http
            .get(gw.url(&format!("/v1/batches/{id}")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        let header = r
            .headers()
            .get("x-litellm-response-cost")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(Decimal::from_str(&header).unwrap(), want);
    }
    assert_eq!(key_spend(&gw, &key).await, want);
    let (_, logs) = gw.get(&format!("/spend/logs?batch_id={id}")).await.unwrap();
    let ledger: Decimal = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| dec(&r["spend"]))
        .sum();
    assert_eq!(ledger, want);
    let lines_logged: u64 = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["lines"].as_u64().unwrap())
        .sum();
    assert_eq!(lines_logged, 25);

    // Reports group by team, key, model and day.
    for (by, expect_key) in [("team", json!("team-a")), ("model", json!("m"))] {
        let (status, report) = gw
            .get(&format!("/global/spend/report?group_by={by}"))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(report[0]["key"], expect_key);
        assert_eq!(dec(&report[0]["spend"]), want);
    }
    let (status, _) = gw
        .get("/global/spend/report?group_by=nonsense")
        .await
        .unwrap();
    assert_eq!(status, 400);
    // Spend endpoints are the master's.
    let (status, _) = alice.call(Method::GET, "/spend/logs", None).await;
    assert_eq!(status, 403);

    // An unpriced model costs zero and says so.
    let (_, f2) = alice.upload("other", chat_lines("other", 3)).await;
    let (_, b2) = alice.create(f2["id"].as_str().unwrap()).await;
    let d2 = gw
        .wait_batch(b2["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(dec(&d2["cost"]["total"]), Decimal::ZERO);
    assert_eq!(d2["cost"]["unpriced_lines"], 3);

    // The database never holds the key itself.
    let db = std::fs::read(gw.data_dir().join("batchgate.db")).unwrap();
    let wal = std::fs::read(gw.data_dir().join("batchgate.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "plaintext key found in the store"
        );
    }
}

#[tokio::test]
async fn a_crash_and_resume_bills_each_line_once() {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(20),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut gw = Gateway::start(&priced_config(&mock.base_url(), ""))
        .await
        .unwrap();
    let key = new_key(&gw, json!({"team_id": "t"})).await;
    let me = As {
        gw: &gw,
        key: key.clone(),
    };
    let lines = chat_lines("m", 600);
    let (_, file) = me.upload("m", lines.clone()).await;
    let (_, batch) = me.create(file["id"].as_str().unwrap()).await;
    let id = batch["id"].as_str().unwrap().to_string();
    loop {
        let (_, b) = gw.get(&format!("/v1/batches/{id}")).await.unwrap();
        if b["request_counts"]["completed"].as_u64().unwrap_or(0) >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.kill().await.unwrap();
    gw.restart().await.unwrap();
    let done = gw.wait_batch(&id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["request_counts"]["completed"], 600);
    let want = expected_cost(&lines);
    assert_eq!(dec(&done["cost"]["total"]), want);
    assert_eq!(done["cost"]["priced_lines"], 600);
    assert_eq!(key_spend(&gw, &key).await, want);
    let (_, logs) = gw.get(&format!("/spend/logs?batch_id={id}")).await.unwrap();
    let logged: u64 = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["lines"].as_u64().unwrap())
        .sum();
    assert_eq!(logged, 600, "each line is in the ledger exactly once");
}

#[tokio::test]
async fn isolation_matrix_over_every_endpoint() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&priced_config(&mock.base_url(), ""))
        .await
        .unwrap();
    let owner = As {
        gw: &gw,
        key: new_key(&gw, json!({"team_id": "team-1"})).await,
    };
    let teammate = As {
        gw: &gw,
        key: new_key(&gw, json!({"team_id": "team-1"})).await,
    };
    let stranger = As {
        gw: &gw,
        key: new_key(&gw, json!({"team_id": "team-2"})).await,
    };
    let master = As {
        gw: &gw,
        key: MASTER_KEY.into(),
    };

    let (_, file) = owner.upload("m", chat_lines("m", 3)).await;
    let file_id = file["id"].as_str().unwrap().to_string();
    let (_, batch) = owner.create(&file_id).await;
    let batch_id = batch["id"].as_str().unwrap().to_string();
    let done = gw
        .wait_batch(&batch_id, Duration::from_secs(60))
        .await
        .unwrap();
    let out_id = done["output_file_id"].as_str().unwrap().to_string();

    let listed = |page: &Value, id: &str| {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == id)
    };
    let mut matrix = Vec::new();
    for (name, who, sees) in [
        ("teammate", &teammate, true),
        ("stranger", &stranger, false),
        ("master", &master, true),
    ] {
        let want = if sees { 200 } else { 404 };
        let checks = [
            (
                "GET file",
                who.call(Method::GET, &format!("/v1/files/{file_id}"), None)
                    .await
                    .0,
            ),
            (
                "GET file content",
                who.call(Method::GET, &format!("/v1/files/{out_id}/content"), None)
                    .await
                    .0,
            ),
            (
                "GET output file",
                who.call(Method::GET, &format!("/v1/files/{out_id}"), None)
                    .await
                    .0,
            ),
            (
                "GET batch",
                who.call(Method::GET, &format!("/v1/batches/{batch_id}"), None)
                    .await
                    .0,
            ),
        ];
        for (what, status) in checks {
            matrix.push(format!("{name:9} {what:17} {status}"));
            assert_eq!(status, want, "{name} {what}");
        }
        let (_, files) = who.call(Method::GET, "/v1/files", None).await;
        let (_, batches) = who.call(Method::GET, "/v1/batches", None).await;
        assert_eq!(listed(&files, &file_id), sees, "{name} file list");
        assert_eq!(listed(&files, &out_id), sees, "{name} output in file list");
        assert_eq!(listed(&batches, &batch_id), sees, "{name} batch list");
        matrix.push(format!(
            "{name:9} lists              {}",
            if sees { "yes" } else { "no" }
        ));
        // Cancel of an ended batch: 409 for those who see it, 404 otherwise.
        let (status, _) = who
            .call(
                Method::POST,
                &format!("/v1/batches/{batch_id}/cancel"),
                None,
            )
            .await;
        assert_eq!(status, if sees { 409 } else { 404 }, "{name} cancel");
        matrix.push(format!("{name:9} cancel            {status}"));
    }
    // Delete: the stranger cannot, the teammate can.
    let (status, _) = stranger
        .call(Method::DELETE, &format!("/v1/files/{out_id}"), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = teammate
        .call(Method::DELETE, &format!("/v1/files/{out_id}"), None)
        .await;
    assert_eq!(status, 200);
    matrix.push("stranger  DELETE            404 / teammate DELETE 200".into());
    // A stranger cannot start a batch on someone else's file either.
    let (status, _) = stranger.create(&file_id).await;
    assert_eq!(status, 404);
    eprintln!("isolation matrix:\n{}", matrix.join("\n"));
}

#[tokio::test]
async fn model_allow_lists_and_key_management() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&priced_config(&mock.base_url(), ""))
        .await
        .unwrap();
    let key = new_key(&gw, json!({"models": ["m"], "key_alias": "narrow"})).await;
    let narrow = As {
        gw: &gw,
        key: key.clone(),
    };
    let (status, body) = narrow.upload("other", chat_lines("other", 1)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(narrow.upload("m", chat_lines("m", 1)).await.0, 200);
    // Only the master key manages keys.
    assert_eq!(
        narrow
            .call(Method::POST, "/key/generate", Some(json!({})))
            .await
            .0,
        403
    );
    // Update widens the list; delete revokes at once.
    let (status, _) = gw
        .post("/key/update", &json!({"key": key, "models": []}))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(narrow.upload("other", chat_lines("other", 1)).await.0, 200);
    // Block (LiteLLM's /key/block) refuses the key at once, everywhere on
    // this instance, and keeps it; unblock lets it in again at once.
    let (status, body) = gw.post("/key/block", &json!({"key": key})).await.unwrap();
    assert_eq!((status, &body["blocked"]), (200, &json!(true)), "{body}");
    let (status, body) = narrow.call(Method::GET, "/v1/files", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "key_blocked", "{body}");
    let (_, info) = gw.get(&format!("/key/info?key={key}")).await.unwrap();
    assert_eq!(info["info"]["blocked"], true, "{info}");
    assert_eq!(info["info"]["key_alias"], "narrow", "{info}");
    assert_eq!(
        narrow
            .call(Method::POST, "/key/unblock", Some(json!({"key": key})))
            .await
            .0,
        401,
        "a blocked key cannot unblock itself"
    );
    let (status, body) = gw.post("/key/unblock", &json!({"key": key})).await.unwrap();
    assert_eq!((status, &body["blocked"]), (200, &json!(false)), "{body}");
    assert_eq!(narrow.call(Method::GET, "/v1/files", None).await.0, 200);
    // `blocked` in /key/update does the same; a non-boolean is a 400.
    let (status, _) = gw
        .post("/key/update", &json!({"key": key, "blocked": true}))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(narrow.call(Method::GET, "/v1/files", None).await.0, 401);
    let (status, body) = gw
        .post("/key/update", &json!({"key": key, "blocked": "yes"}))
        .await
        .unwrap();
    assert_eq!(
        (status, &body["error"]["param"]),
        (400, &json!("blocked")),
        "{body}"
    );
    let (status, body) = gw.post("/key/block", &json!({})).await.unwrap();
    assert_eq!(
        (status, &body["error"]["param"]),
        (400, &json!("key")),
        "{body}"
    );
    let (status, _) = gw
        .post("/key/unblock", &json!({"key": "sk-no-such-key-at-all"}))
        .await
        .unwrap();
    assert_eq!(status, 404);
    let (status, body) = gw
        .post("/key/delete", &json!({"keys": [key]}))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["deleted_keys"].as_array().unwrap().len(), 1);
    let (status, body) = narrow.call(Method::GET, "/v1/files", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");
}

#[tokio::test]
async fn budgets_block_uploads_and_creates_and_stop_running_batches() {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(50),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let gw = Gateway::start(&priced_config(&mock.base_url(), ""))
        .await
        .unwrap();
    // One line costs ~0.00002 (about 5 input and 16 output tokens at half price).
    let key = new_key(&gw, json!({"team_id": "tb", "max_budget": 0.0002})).await;
    let me = As {
        gw: &gw,
        key: key.clone(),
    };
    let (_, file) = me.upload("m", chat_lines("m", 200)).await;
    let (_, batch) = me.create(file["id"].as_str().unwrap()).await;
    let id = batch["id"].as_str().unwrap().to_string();
    let done = gw.wait_batch(&id, Duration::from_secs(120)).await.unwrap();
    // In-flight lines finish, the rest never run.
    let completed = done["request_counts"]["completed"].as_u64().unwrap();
    assert!(completed > 0 && completed < 200, "{done}");
    assert_eq!(
        done["request_counts"]["failed"].as_u64().unwrap() + completed,
        200
    );
    let errors = gw.jsonl(done["error_file_id"].as_str()).await.unwrap();
    assert!(errors
        .iter()
        .all(|l| l["error"]["code"] == "budget_exceeded"));
    assert!(mock.stats().requests < 200);

    // Over budget: no new batch files, no new batches.
    let (status, body) = me.upload("m", chat_lines("m", 1)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("budget_exceeded"))
    );
    let (status, body) = me.create(file["id"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("budget_exceeded"))
    );

    // A team budget binds every key of the team.
    let (status, _) = gw
        .post("/team/new", &json!({"team_id": "poor", "max_budget": 0}))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let member = As {
        gw: &gw,
        key: new_key(&gw, json!({"team_id": "poor"})).await,
    };
    let (status, body) = member.upload("m", chat_lines("m", 1)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("budget_exceeded"))
    );

    // A budget period resets spend.
    let periodic = new_key(&gw, json!({"max_budget": 0.00003, "budget_duration": "2s"})).await;
    let p = As {
        gw: &gw,
        key: periodic.clone(),
    };
    let (_, f) = p.upload("m", chat_lines("m", 3)).await;
    let (_, b) = p.create(f["id"].as_str().unwrap()).await;
    gw.wait_batch(b["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(key_spend(&gw, &periodic).await > Decimal::ZERO);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        p.upload("m", chat_lines("m", 1)).await.0,
        200,
        "spend resets after budget_duration"
    );
    assert_eq!(key_spend(&gw, &periodic).await, Decimal::ZERO);
}
