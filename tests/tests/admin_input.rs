//! Admin bodies from a hostile client, in process (the real router, store
//! and auth): whatever JSON a field of `/key/generate`, `/key/update` or
//! `/team/new` holds, the answer is never a 5xx, a refusal is a 400 naming
//! the field, and the key (or every key of the team) keeps being served and
//! stays manageable by the master key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use batchgate_tests::assert_error_envelope;
use batchgate_tests::in_process::{InProcess, Keys};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};

const MASTER: &str = "sk-admin-master";
const CONFIG: &str = "model_list:\n- model_name: m\n  litellm_params:\n    model: hosted_vllm/x\n    api_base: http://127.0.0.1:9\n";

struct App {
    base: String,
    http: reqwest::Client,
    _app: InProcess,
    _dir: tempfile::TempDir,
    /// Makes team ids unique per case.
    seq: AtomicU64,
}

impl App {
    async fn start() -> App {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(|| 1_700_000_000);
        let app =
            InProcess::start(CONFIG, dir.path(), clock, Keys::WithVirtual(MASTER), false).await;
        App {
            base: app.base.clone(),
            http: reqwest::Client::new(),
            _app: app,
            _dir: dir,
            seq: AtomicU64::new(0),
        }
    }

    async fn call(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// `GET path?name=value` with the master key, the value URL-encoded.
    async fn info(&self, path: &str, name: &str, value: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .query(&[(name, value)])
            .bearer_auth(MASTER)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn admin(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(MASTER, Method::POST, path, Some(body)).await
    }

    /// Uploads a batch file as `key` (which runs the budget check).
    async fn upload(&self, key: &str) -> u16 {
        let part = reqwest::multipart::Part::bytes(b"{}\n".to_vec()).file_name("a.jsonl");
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part("file", part);
        let r = self
            .http
            .post(format!("{}/v1/files", self.base))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    fn next_team(&self) -> String {
        format!("team-{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }
}

/// An answer that is either a success or a 4xx in the envelope naming
/// `field`; never a 5xx.
fn assert_sane(what: &str, field: &str, (status, body): &(u16, Value)) {
    assert!(*status < 500, "{what} with {field}: {status} {body}");
    if *status >= 400 {
        assert_error_envelope(body);
        if *status == 400 {
            assert_eq!(body["error"]["param"], field, "{what}: {body}");
        }
    }
}

/// The key works for ordinary calls and the master key can read it.
async fn assert_key_serves(app: &App, key: &str, what: &str) {
    let (status, body) = app.call(key, Method::GET, "/v1/files", None).await;
    assert_eq!(status, 200, "{what}: the key is no longer served: {body}");
    // 400 (over budget) and 403 (model not allowed) are fine answers.
    let upload = app.upload(key).await;
    assert!(
        upload < 500 && upload != 401,
        "{what}: an upload answered {upload}"
    );
    let (status, body) = app.info("/key/info", "key", key).await;
    assert_eq!(status, 200, "{what}: /key/info {body}");
}

/// One hostile `value` in `field`, through every admin route that takes it.
async fn exercise(app: &App, field: &str, value: Value) {
    let team = app.next_team();
    let mut body = json!({ "team_id": team });
    body[field] = value.clone();
    let generated = app.admin("/key/generate", &body).await;
    assert_sane("/key/generate", field, &generated);
    // A key that holds nothing odd, updated with the hostile value.
    let (status, plain) = app.admin("/key/generate", &json!({"team_id": team})).await;
    assert_eq!(status, 200, "{plain}");
    let plain = plain["key"].as_str().unwrap().to_string();
    let mut update = json!({ "key": plain });
    if field != "key" {
        update[field] = value.clone();
    }
    assert_sane(
        "/key/update",
        field,
        &app.admin("/key/update", &update).await,
    );
    assert_key_serves(app, &plain, "after /key/update").await;

    let mut team_body = json!({ "team_id": team });
    team_body[field] = value.clone();
    assert_sane(
        "/team/new",
        field,
        &app.admin("/team/new", &team_body).await,
    );
    assert_sane(
        "/team/update",
        field,
        &app.admin("/team/update", &team_body).await,
    );
    let (status, info) = app.info("/team/info", "team_id", &team).await;
    assert!(
        status == 200 || status == 404,
        "/team/info: {status} {info}"
    );
    // Every key of the team is still served after the team changed.
    assert_key_serves(app, &plain, "after /team/new").await;

    if generated.0 == 200 {
        let key = generated.1["key"].as_str().unwrap().to_string();
        assert_key_serves(app, &key, "a generated key").await;
        let (status, body) = app.admin("/key/delete", &json!({"keys": [key]})).await;
        assert_eq!(status, 200, "{body}");
    }
    let delete = app.admin("/key/delete", &json!({ "keys": value })).await;
    assert_sane("/key/delete", "keys", &delete);
    let (status, body) = app.admin("/key/delete", &json!({"keys": [plain]})).await;
    assert_eq!(status, 200, "the master key can always delete: {body}");
}

/// Any JSON, biased towards what breaks parsers and arithmetic.
fn hostile_json() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        any::<String>(),
        "[0-9]{1,22}[smhdé ñ]",
        "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?(e[-+]?[0-9]{1,4})?",
        prop::sample::select(vec![
            "3é",
            "ñd",
            "99999999999999999999d",
            "9223372036854775807d",
            "9223372036854775807s",
            "153722867280912930m",
            "3651d",
            "NaN",
            "-0",
            "1e28",
            "key_abcdefgh",
        ])
        .prop_map(String::from),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text.prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn hostile_admin_bodies_never_5xx_and_keys_stay_manageable() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(App::start());
    let fields = vec![
        "key",
        "key_alias",
        "team_id",
        "team_alias",
        "models",
        "max_budget",
        "budget_duration",
        "metadata",
    ];
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 160,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let cases = (prop::sample::select(fields), hostile_json());
    runner
        .run(&cases, |(field, value)| {
            rt.block_on(exercise(&app, field, value));
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_reported_durations_are_named_400s() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(App::start());
    rt.block_on(async {
        for d in [
            "3é",
            "ñd",
            "99999999999999999999d",
            "9223372036854775807d",
            "9223372036854775807s",
            "3651d",
        ] {
            for path in ["/key/generate", "/team/new"] {
                let (status, body) = app.admin(path, &json!({"budget_duration": d})).await;
                assert_eq!(status, 400, "{path} {d}: {body}");
                assert_error_envelope(&body);
                assert_eq!(body["error"]["param"], "budget_duration", "{body}");
            }
        }
        let (status, key) = app
            .admin(
                "/key/generate",
                &json!({"budget_duration": "3650d", "max_budget": "12.5"}),
            )
            .await;
        assert_eq!(status, 200, "{key}");
        assert_eq!(key["budget_reset_at"], 1_700_000_000 + 3650 * 86_400);
    });
}
