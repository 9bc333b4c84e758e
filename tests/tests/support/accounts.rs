//! What the fleet accounts tests share: the priced models and their batch
//! prices, a fleet running them, driving it as a virtual key, and what a
//! batch must cost computed from its output file alone.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use batchgate_cost::Decimal;
use batchgate_mock_vllm::{completion_tokens_of, prompt_tokens_of};
use batchgate_tests::{
    assert_error_envelope, config_of_entries, model_entry, Gateway, MockConfig, MockHandle,
    MockVllm, MASTER_KEY,
};
use reqwest::Method;
use serde_json::{json, Value};

use super::support::Fleet;

pub const WAIT: Duration = Duration::from_secs(180);
pub const CHAT: &str = "/v1/chat/completions";

/// How long a key change may take to reach the other instances: "within
/// 5 seconds (the auth cache)", docs/cost.md and docs/scale-out.md.
pub const KEY_CACHE_WINDOW: Duration = Duration::from_secs(5);
/// Added to the window before a poll gives up: room for a machine busy
/// with other builds, while a cache that never refreshes still fails.
pub const SLACK: Duration = Duration::from_secs(10);

/// The two priced models, both served by the one mock. `alpha` has only
/// regular prices (batch lines: × the default multiplier 0.5); `beta` has
/// batch prices of its own, which win over its regular ones.
pub const ALPHA: &str = "alpha";
pub const BETA: &str = "beta";
pub const ALPHA_IN: &str = "0.0000013";
pub const ALPHA_OUT: &str = "0.0000029";
pub const BETA_IN_BATCH: &str = "0.00000071";
pub const BETA_OUT_BATCH: &str = "0.00000193";

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("not a decimal: {s:?}: {e}"))
}

/// A decimal the gateway returned as a string.
pub fn dec_of(v: &Value) -> Decimal {
    dec(v
        .as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}")))
}

/// The batch price per (input, output) token of `model`, as docs/cost.md
/// defines it for the prices configured below.
pub fn batch_prices(model: &str) -> (Decimal, Decimal) {
    let half = dec("0.5");
    match model {
        ALPHA => (dec(ALPHA_IN) * half, dec(ALPHA_OUT) * half),
        BETA => (dec(BETA_IN_BATCH), dec(BETA_OUT_BATCH)),
        other => panic!("no prices for {other}"),
    }
}

/// Three instances, both priced models on `mock`; `batch_settings` YAML
/// lines (indented) go in `settings`.
pub async fn start_fleet(mock: &MockHandle, settings: &str) -> Fleet {
    let served = batchgate_mock_vllm::DEFAULT_MODEL;
    let parallel = [("max_parallel_requests", "4")];
    let alpha = model_entry(ALPHA, served, &mock.base_url(), &parallel)
        + &format!(
            "  model_info:\n    input_cost_per_token: {ALPHA_IN}\n    output_cost_per_token: {ALPHA_OUT}\n"
        );
    // Regular prices a batch line must not be charged.
    let beta = model_entry(BETA, served, &mock.base_url(), &parallel)
        + &format!(
            "  model_info:\n    input_cost_per_token: 0.5\n    output_cost_per_token: 0.5\n    input_cost_per_token_batches: {BETA_IN_BATCH}\n    output_cost_per_token_batches: \"{BETA_OUT_BATCH}\"\n"
        );
    let extra = format!("batch_settings:\n  lease_seconds: 5\n{settings}");
    let cfg = config_of_entries(&[alpha, beta], &extra);
    Fleet::start(&cfg, "accounts", 3).await
}

/// `n` chat lines for `model` whose usage varies line by line (1 to 11
/// prompt words, 1 to 16 completion tokens), so that a line billed twice
/// or not at all changes the totals; `salt` varies it between batches.
pub fn varied_lines(model: &str, n: usize, salt: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 1..=n {
        let words = vec!["word"; (i + salt) % 11 + 1].join(" ");
        let max_tokens = (i * 7 + salt) % 16 + 1;
        let line = json!({
            "custom_id": format!("req-{i}"),
            "method": "POST",
            "url": CHAT,
            "body": {"model": model, "max_tokens": max_tokens,
                     "messages": [{"role": "user", "content": words}]}
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// Uploads a batch file as `key`: status and body.
pub async fn upload_by(gw: &Gateway, key: &str, model: &str, content: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part(
            "file",
            reqwest::multipart::Part::bytes(content).file_name("in.jsonl"),
        );
    let r = gw
        .http
        .post(gw.url("/v1/files"))
        .bearer_auth(key)
        .header("x-litellm-model", model)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Creates a chat batch over `file_id` as `key`: status and body.
pub async fn create_by(gw: &Gateway, key: &str, file_id: &str) -> (u16, Value) {
    let body = json!({"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"});
    gw.call_as(key, Method::POST, "/v1/batches", Some(&body))
        .await
        .unwrap()
}

/// Uploads and creates as `key`; the batch's id.
pub async fn submit(gw: &Gateway, key: &str, model: &str, content: Vec<u8>) -> String {
    let (status, file) = upload_by(gw, key, model, content).await;
    assert_eq!(status, 200, "upload: {file}");
    let (status, batch) = create_by(gw, key, file["id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "create: {batch}");
    batch["id"].as_str().unwrap().to_string()
}

/// The models `key` may use, per `GET /v1/models` on `gw`, or the status
/// and body of a refusal.
pub async fn models_of(gw: &Gateway, key: &str) -> Result<Vec<String>, (u16, Value)> {
    let (status, body) = gw
        .call_as(key, Method::GET, "/v1/models", None)
        .await
        .unwrap();
    if status != 200 {
        return Err((status, body));
    }
    Ok(body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect())
}

/// Polls `probe` every 100 ms until it returns `Some`; panics naming
/// `what` if it has not by `deadline` after `since`. Returns the value and
/// how long after `since` it came.
pub async fn eventually<T, F, Fut>(what: &str, since: Instant, deadline: Duration, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    loop {
        let last = match probe().await {
            Ok(v) => {
                eprintln!("{what}: after {:?}", since.elapsed());
                return v;
            }
            Err(last) => last,
        };
        if since.elapsed() > deadline {
            panic!("{what}: not seen within {deadline:?}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /key/info` for `key_id` (master key): the key's info.
pub async fn key_info(gw: &Gateway, key_id: &str) -> Value {
    let (status, body) = gw.get(&format!("/key/info?key={key_id}")).await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["info"].clone()
}

/// The master-key GET `path` on every instance; asserts they all answer
/// 200 with the same body, and returns it.
pub async fn same_everywhere(fleet: &Fleet, path: &str) -> Value {
    let mut seen: Option<Value> = None;
    for (i, gw) in fleet.gateways.iter().enumerate() {
        let (status, body) = gw.get(path).await.unwrap();
        assert_eq!(status, 200, "{path} on instance {i}: {body}");
        match &seen {
            None => seen = Some(body),
            Some(first) => assert_eq!(&body, first, "{path}: instance {i} differs from 0"),
        }
    }
    seen.unwrap()
}

/// What a batch must cost, computed from its output file alone: each
/// line's `usage` × `model`'s batch prices (docs/cost.md). Each line's
/// usage is also checked against the mock's own accounting of the input
/// line it answers, so the figures are not just the gateway's word.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Bill {
    pub lines: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub input: Decimal,
    pub output: Decimal,
}

impl Bill {
    pub fn total(&self) -> Decimal {
        self.input + self.output
    }

    pub fn add(&mut self, o: &Bill) {
        self.lines += o.lines;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.input += o.input;
        self.output += o.output;
    }
}

pub fn bill_of(model: &str, input: &[u8], output: &[Value]) -> Bill {
    let bodies: BTreeMap<String, Value> = String::from_utf8_lossy(input)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["custom_id"].as_str().unwrap().to_string(),
                v["body"].clone(),
            )
        })
        .collect();
    let (pin, pout) = batch_prices(model);
    let mut bill = Bill::default();
    for line in output {
        let usage = &line["response"]["body"]["usage"];
        let prompt = usage["prompt_tokens"].as_u64().unwrap();
        let completion = usage["completion_tokens"].as_u64().unwrap();
        let cached = usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0);
        // No cache price is configured: cached tokens cost as uncached
        // input (and the mock's chat answers report none).
        assert_eq!(cached, 0, "{line}");
        let body = &bodies[line["custom_id"].as_str().unwrap()];
        assert_eq!(prompt, prompt_tokens_of(body), "{line}");
        assert_eq!(completion, completion_tokens_of(body), "{line}");
        bill.lines += 1;
        bill.input_tokens += prompt;
        bill.output_tokens += completion;
        bill.input += Decimal::from(prompt) * pin;
        bill.output += Decimal::from(completion) * pout;
    }
    bill
}

/// A counter of the instance's `/metrics`, summed over its label sets.
pub async fn metric(gw: &Gateway, name: &str, label: &str) -> u64 {
    let text = gw
        .http
        .get(gw.url("/metrics"))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// What a key just made elsewhere must do on `gw` at once: authenticate,
/// see its own settings and team, and be held to its allow-list.
pub async fn works_at_once(name: &str, gw: &Gateway, key: &str, key_id: &str) {
    assert_eq!(
        models_of(gw, key).await,
        Ok(vec![ALPHA.to_string()]),
        "{name}"
    );
    let (status, own) = gw
        .call_as(key, Method::GET, "/key/info", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{name}: {own}");
    assert_eq!(own["key"], json!(key_id), "{name}");
    assert_eq!(own["info"]["team_id"], "team-keys", "{name}");
    assert_eq!(dec_of(&own["info"]["max_budget"]), dec("0.5"), "{name}");
    assert_eq!(own["info"]["key_alias"], "fleet-key", "{name}");
    let (status, t) = gw
        .call_as(key, Method::GET, "/team/info?team_id=team-keys", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{name}: {t}");
    assert_eq!(dec_of(&t["team_info"]["max_budget"]), dec("7.5"), "{name}");
    let (status, up) = upload_by(gw, key, ALPHA, varied_lines(ALPHA, 2, 0)).await;
    assert_eq!(status, 200, "{name}: {up}");
    let (status, refused) = upload_by(gw, key, BETA, varied_lines(BETA, 2, 0)).await;
    assert_eq!(status, 403, "{name}: {refused}");
    assert_error_envelope(&refused);
    assert_eq!(refused["error"]["code"], "model_not_allowed", "{name}");
}

/// A new virtual key made through `gw`: its value and its `key_…` id.
pub async fn make_key(gw: &Gateway, body: Value) -> (String, String) {
    let (status, made) = gw.post("/key/generate", &body).await.unwrap();
    assert_eq!(status, 200, "{made}");
    let value = made["key"].as_str().unwrap().to_string();
    (value, made["token"].as_str().unwrap().to_string())
}

pub async fn mock(latency_ms: u64) -> MockHandle {
    MockVllm::start(MockConfig {
        latency: Duration::from_millis(latency_ms),
        ..MockConfig::default()
    })
    .await
    .unwrap()
}
