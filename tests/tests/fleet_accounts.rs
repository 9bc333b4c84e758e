//! Keys, spend and budgets across a fleet: three gateway processes on one
//! PostgreSQL schema and one blob store (the test S3 server under `cargo
//! xtask ci`, else a shared `file://` directory), as docs/scale-out.md
//! runs them.
//!
//! - A virtual key made on one instance works on every other at once; an
//!   update or a delete made on another reaches the instances that had it
//!   cached within the documented key-cache window (5 s, docs/cost.md):
//!   each waits on the event by polling, with a deadline well past the
//!   window so a key cache that never refreshes fails the test.
//! - Batches by the same keys run at once through different instances
//!   (each batch also shared chunk by chunk): the batch costs, key, team,
//!   per-model and ledger spend that every instance reports are identical
//!   and equal, to the last decimal, what the output files' per-line usage
//!   and the configured prices give.
//! - A budget spent through one instance is enforced by the others: a
//!   running batch stops (`on_budget_exceeded: stop`), new batches and
//!   uploads are refused with 400 `budget_exceeded`; raising the budget on
//!   another instance lets work in again at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use batchgate_cost::Decimal;
use batchgate_mock_vllm::{completion_tokens_of, prompt_tokens_of};
use batchgate_store_postgres::testing::Scratch;
use batchgate_tests::s3::Bucket;
use batchgate_tests::{
    assert_error_envelope, assert_every_id_once, config_of_entries, model_entry, Gateway,
    MockConfig, MockHandle, MockVllm, MASTER_KEY,
};
use reqwest::Method;
use serde_json::{json, Value};

const SECRET: &str = "a-fleet-wide-test-secret";
const WAIT: Duration = Duration::from_secs(180);
const CHAT: &str = "/v1/chat/completions";

/// How long a key change may take to reach the other instances: "within
/// 5 seconds (the auth cache)", docs/cost.md and docs/scale-out.md.
const KEY_CACHE_WINDOW: Duration = Duration::from_secs(5);
/// Added to the window before a poll gives up: room for a machine busy
/// with other builds, while a cache that never refreshes still fails.
const SLACK: Duration = Duration::from_secs(10);

/// The two priced models, both served by the one mock. `alpha` has only
/// regular prices (batch lines: × the default multiplier 0.5); `beta` has
/// batch prices of its own, which win over its regular ones.
const ALPHA: &str = "alpha";
const BETA: &str = "beta";
const ALPHA_IN: &str = "0.0000013";
const ALPHA_OUT: &str = "0.0000029";
const BETA_IN_BATCH: &str = "0.00000071";
const BETA_OUT_BATCH: &str = "0.00000193";

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("not a decimal: {s:?}: {e}"))
}

/// A decimal the gateway returned as a string.
fn dec_of(v: &Value) -> Decimal {
    dec(v
        .as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}")))
}

/// The batch price per (input, output) token of `model`, as docs/cost.md
/// defines it for the prices configured below.
fn batch_prices(model: &str) -> (Decimal, Decimal) {
    let half = dec("0.5");
    match model {
        ALPHA => (dec(ALPHA_IN) * half, dec(ALPHA_OUT) * half),
        BETA => (dec(BETA_IN_BATCH), dec(BETA_OUT_BATCH)),
        other => panic!("no prices for {other}"),
    }
}

/// Three instances sharing one scratch schema and one blob store.
struct Fleet {
    gw: Vec<Gateway>,
    _blobs: tempfile::TempDir,
    _scratch: Scratch,
}

impl Fleet {
    /// `batch_settings` YAML lines (indented) go in `settings`.
    async fn start(mock: &MockHandle, settings: &str) -> Fleet {
        let scratch = Scratch::new().await;
        let blobs = tempfile::tempdir().unwrap();
        let mut env = match Bucket::create("accounts").await.unwrap() {
            Some(bucket) => {
                let mut env = bucket.env();
                let url = format!("s3://{}/accounts", bucket.name);
                env.push(("BATCHGATE_STORAGE_URL", url));
                env
            }
            None => {
                let url = format!("file://{}", blobs.path().display());
                vec![("BATCHGATE_STORAGE_URL", url)]
            }
        };
        env.push(("DATABASE_URL", scratch.url()));
        env.push(("BATCHGATE_ID_SECRET", SECRET.into()));
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
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
        let mut gw = Vec::new();
        for _ in 0..3 {
            gw.push(Gateway::start_with(&cfg, &[], &envs).await.unwrap());
        }
        Fleet {
            gw,
            _blobs: blobs,
            _scratch: scratch,
        }
    }
}

/// `n` chat lines for `model` whose usage varies line by line (1 to 11
/// prompt words, 1 to 16 completion tokens), so that a line billed twice
/// or not at all changes the totals; `salt` varies it between batches.
fn varied_lines(model: &str, n: usize, salt: usize) -> Vec<u8> {
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
async fn upload_by(gw: &Gateway, key: &str, model: &str, content: Vec<u8>) -> (u16, Value) {
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
async fn create_by(gw: &Gateway, key: &str, file_id: &str) -> (u16, Value) {
    let body = json!({"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"});
    gw.call_as(key, Method::POST, "/v1/batches", Some(&body))
        .await
        .unwrap()
}

/// Uploads and creates as `key`; the batch's id.
async fn submit(gw: &Gateway, key: &str, model: &str, content: Vec<u8>) -> String {
    let (status, file) = upload_by(gw, key, model, content).await;
    assert_eq!(status, 200, "upload: {file}");
    let (status, batch) = create_by(gw, key, file["id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "create: {batch}");
    batch["id"].as_str().unwrap().to_string()
}

/// The models `key` may use, per `GET /v1/models` on `gw`, or the status
/// and body of a refusal.
async fn models_of(gw: &Gateway, key: &str) -> Result<Vec<String>, (u16, Value)> {
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
async fn eventually<T, F, Fut>(what: &str, since: Instant, deadline: Duration, probe: F) -> T
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
async fn key_info(gw: &Gateway, key_id: &str) -> Value {
    let (status, body) = gw.get(&format!("/key/info?key={key_id}")).await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["info"].clone()
}

/// The master-key GET `path` on every instance; asserts they all answer
/// 200 with the same body, and returns it.
async fn same_everywhere(fleet: &Fleet, path: &str) -> Value {
    let mut seen: Option<Value> = None;
    for (i, gw) in fleet.gw.iter().enumerate() {
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
struct Bill {
    lines: u64,
    input_tokens: u64,
    output_tokens: u64,
    input: Decimal,
    output: Decimal,
}

impl Bill {
    fn total(&self) -> Decimal {
        self.input + self.output
    }

    fn add(&mut self, o: &Bill) {
        self.lines += o.lines;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.input += o.input;
        self.output += o.output;
    }
}

fn bill_of(model: &str, input: &[u8], output: &[Value]) -> Bill {
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
async fn metric(gw: &Gateway, name: &str, label: &str) -> u64 {
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
async fn works_at_once(name: &str, gw: &Gateway, key: &str, key_id: &str) {
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
async fn make_key(gw: &Gateway, body: Value) -> (String, String) {
    let (status, made) = gw.post("/key/generate", &body).await.unwrap();
    assert_eq!(status, 200, "{made}");
    let value = made["key"].as_str().unwrap().to_string();
    (value, made["token"].as_str().unwrap().to_string())
}

async fn mock(latency_ms: u64) -> MockHandle {
    MockVllm::start(MockConfig {
        latency: Duration::from_millis(latency_ms),
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

/// A key generated through A works on B and C at once (B had refused the
/// same value a moment before: nothing negative is cached); an update and
/// a delete made through B reach A and C, which had the key cached, within
/// the key-cache window.
#[tokio::test]
async fn a_key_made_on_one_instance_works_on_all_and_its_changes_reach_all() {
    let mock = mock(1).await;
    let fleet = Fleet::start(&mock, "").await;
    let [a, b, c] = [&fleet.gw[0], &fleet.gw[1], &fleet.gw[2]];

    let (status, team) = a
        .post(
            "/team/new",
            &json!({"team_id": "team-keys", "max_budget": "7.5"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{team}");
    let (status, team) = c
        .post("/team/new", &json!({"team_id": "team-moved"}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{team}");

    // A client trying its key before an admin made it: refused on B.
    let key = "sk-fleet-accounts-custom-key";
    let (status, body) = b
        .call_as(key, Method::GET, "/v1/models", None)
        .await
        .unwrap();
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("invalid_api_key"))
    );

    let (status, made) = a
        .post(
            "/key/generate",
            &json!({"key": key, "team_id": "team-keys", "max_budget": "0.5",
                    "models": [ALPHA], "key_alias": "fleet-key"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["key"], key);
    let key_id = made["token"].as_str().unwrap().to_string();

    // At once, on B and C together: the key authenticates, sees its own
    // settings and team, and is held to its allow-list.
    futures::join!(
        works_at_once("B", b, key, &key_id),
        works_at_once("C", c, key, &key_id)
    );

    // A and C have the key cached (they just used it); B widens its
    // allow-list and raises its budget.
    assert_eq!(models_of(a, key).await, Ok(vec![ALPHA.to_string()]));
    assert_eq!(models_of(c, key).await, Ok(vec![ALPHA.to_string()]));
    let (status, updated) = b
        .post(
            "/key/update",
            &json!({"key": key_id, "models": [ALPHA, BETA], "max_budget": "0.75"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{updated}");
    let changed = Instant::now();
    // Stored settings are read from the database: every instance shows
    // them at once.
    for gw in [a, b, c] {
        assert_eq!(
            dec_of(&key_info(gw, &key_id).await["max_budget"]),
            dec("0.75")
        );
    }
    let both = vec![ALPHA.to_string(), BETA.to_string()];
    for (name, gw) in [("B", b), ("A", a), ("C", c)] {
        let what = format!("the widened allow-list on {name}");
        eventually(&what, changed, KEY_CACHE_WINDOW + SLACK, || async {
            match models_of(gw, key).await {
                Ok(m) if m == both => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }
    // …and uploads for the newly allowed model go through on A.
    let (status, up) = upload_by(a, key, BETA, varied_lines(BETA, 2, 0)).await;
    assert_eq!(status, 200, "{up}");

    // B moves the key to another team: A, which has it cached with the
    // old team, lets it read only the new team's info once it notices.
    assert_eq!(
        a.call_as(key, Method::GET, "/team/info?team_id=team-keys", None)
            .await
            .unwrap()
            .0,
        200
    );
    let (status, moved) = b
        .post("/key/update", &json!({"key": key, "team_id": "team-moved"}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{moved}");
    let changed = Instant::now();
    eventually(
        "the team move on A",
        changed,
        KEY_CACHE_WINDOW + SLACK,
        || async {
            let new = a
                .call_as(key, Method::GET, "/team/info?team_id=team-moved", None)
                .await
                .unwrap();
            let old = a
                .call_as(key, Method::GET, "/team/info?team_id=team-keys", None)
                .await
                .unwrap();
            match (new.0, old.0) {
                (200, 403) => Ok(()),
                _ => Err(format!("new team {new:?}, old team {old:?}")),
            }
        },
    )
    .await;

    // B deletes the key: A and C, which have it cached, refuse it within
    // the window, with OpenAI's 401.
    for gw in [a, c] {
        assert!(models_of(gw, key).await.is_ok());
    }
    let (status, deleted) = b
        .post("/key/delete", &json!({"keys": [key]}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["deleted_keys"], json!([key_id]));
    let changed = Instant::now();
    for (name, gw) in [("B", b), ("A", a), ("C", c)] {
        let what = format!("the delete on {name}");
        let refused = eventually(&what, changed, KEY_CACHE_WINDOW + SLACK, || async {
            match models_of(gw, key).await {
                Err((401, body)) => Ok(body),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_error_envelope(&refused);
        assert_eq!(refused["error"]["code"], "invalid_api_key");
        let (status, _) = upload_by(gw, key, ALPHA, varied_lines(ALPHA, 1, 0)).await;
        assert_eq!(status, 401, "a deleted key uploads nothing on {name}");
    }
}

/// Five batches by two keys of one team, created at once through the three
/// instances and each shared by them chunk by chunk: every instance
/// reports the same batch costs, key, team, per-model and ledger spend,
/// and each equals, exactly, the output files' usage × the prices.
#[tokio::test]
async fn spend_is_exact_and_the_same_on_every_instance() {
    let mock = mock(20).await;
    let fleet = Fleet::start(&mock, "  chunk_lines: 50\n").await;
    let [a, b, c] = [&fleet.gw[0], &fleet.gw[1], &fleet.gw[2]];

    let (status, team) = b
        .post(
            "/team/new",
            &json!({"team_id": "team-spend", "max_budget": 1000}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{team}");
    let (k1, k1_id) = make_key(a, json!({"team_id": "team-spend", "max_budget": "100"})).await;
    let (k2, k2_id) = make_key(c, json!({"team_id": "team-spend", "max_budget": "100"})).await;
    let key_ids: BTreeMap<&str, &str> =
        [(k1.as_str(), k1_id.as_str()), (k2.as_str(), k2_id.as_str())].into();

    // (instance, key, model, lines): the same key submits through
    // different instances, both keys and both models at once.
    let plan: [(usize, &str, &str, usize); 5] = [
        (0, &k1, ALPHA, 600),
        (1, &k1, BETA, 500),
        (2, &k1, ALPHA, 400),
        (0, &k2, BETA, 300),
        (2, &k2, ALPHA, 200),
    ];
    let inputs: Vec<Vec<u8>> = plan
        .iter()
        .enumerate()
        .map(|(salt, (_, _, model, n))| varied_lines(model, *n, salt))
        .collect();
    let ids: Vec<String> = futures::future::join_all(
        plan.iter()
            .zip(&inputs)
            .map(|((gw, key, model, _), input)| submit(&fleet.gw[*gw], key, model, input.clone())),
    )
    .await;

    // Each waited for through an instance other than its creator's.
    let done: Vec<Value> = futures::future::join_all(
        plan.iter()
            .zip(&ids)
            .map(|((gw, ..), id)| fleet.gw[(gw + 1) % 3].wait_batch(id, WAIT)),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();

    let mut by_key: BTreeMap<&str, Bill> = BTreeMap::new();
    let mut by_model: BTreeMap<&str, Bill> = BTreeMap::new();
    let mut all = Bill::default();
    for (i, ((gw, key, model, n), batch)) in plan.iter().zip(&done).enumerate() {
        assert_eq!(batch["status"], "completed", "{batch}");
        let (out, err) = fleet.gw[(gw + 2) % 3].results(batch).await.unwrap();
        assert_every_id_once(&out, &err, *n);
        assert!(err.is_empty(), "{}", err[0]);
        let bill = bill_of(model, &inputs[i], &out);
        assert_eq!(bill.lines, *n as u64);
        eprintln!(
            "batch {i}: {n} {model} lines, {} + {} tokens, cost {} (in {}, out {})",
            bill.input_tokens,
            bill.output_tokens,
            bill.total(),
            bill.input,
            bill.output
        );
        // The batch object, as every instance reports it.
        let id = batch["id"].as_str().unwrap();
        for (j, gw) in fleet.gw.iter().enumerate() {
            let seen = gw.batch(id).await.unwrap();
            let cost = &seen["cost"];
            assert_eq!(dec_of(&cost["total"]), bill.total(), "batch {i} on {j}");
            assert_eq!(dec_of(&cost["input"]), bill.input, "batch {i} on {j}");
            assert_eq!(dec_of(&cost["output"]), bill.output, "batch {i} on {j}");
            assert_eq!(cost["priced_lines"], json!(n), "batch {i} on {j}");
            assert_eq!(cost["unpriced_lines"], 0, "batch {i} on {j}");
            assert_eq!(seen["usage"]["input_tokens"], json!(bill.input_tokens));
            assert_eq!(seen["usage"]["output_tokens"], json!(bill.output_tokens));
        }
        by_key.entry(*key).or_default().add(&bill);
        by_model.entry(*model).or_default().add(&bill);
        all.add(&bill);
    }
    eprintln!(
        "total: {} lines, cost {} (k1 {}, k2 {}; alpha {}, beta {})",
        all.lines,
        all.total(),
        by_key[k1.as_str()].total(),
        by_key[k2.as_str()].total(),
        by_model[ALPHA].total(),
        by_model[BETA].total()
    );

    // Every instance did part of the work (so accruals to the same key and
    // team came from three processes at once).
    for (i, gw) in fleet.gw.iter().enumerate() {
        let lines = metric(gw, "batchgate_lines_total", "outcome=\"completed\"").await;
        assert!(lines > 0, "instance {i} journaled no line");
    }

    // Key and team spend: identical everywhere, and exact.
    for (key, bill) in &by_key {
        let id = key_ids[key];
        let info = same_everywhere(&fleet, &format!("/key/info?key={id}")).await;
        assert_eq!(dec_of(&info["info"]["spend"]), bill.total(), "key {id}");
    }
    let team = same_everywhere(&fleet, "/team/info?team_id=team-spend").await;
    assert_eq!(dec_of(&team["team_info"]["spend"]), all.total());

    // The per-model, per-key, per-team and per-batch reports.
    let report = same_everywhere(&fleet, "/global/spend/report?group_by=model").await;
    let groups = report.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{report}");
    for g in groups {
        let bill = by_model[g["key"].as_str().unwrap()];
        assert_eq!(dec_of(&g["spend"]), bill.total(), "{g}");
        assert_eq!(g["lines"], json!(bill.lines), "{g}");
        assert_eq!(g["input_tokens"], json!(bill.input_tokens), "{g}");
        assert_eq!(g["output_tokens"], json!(bill.output_tokens), "{g}");
        assert_eq!(g["unpriced_lines"], 0, "{g}");
    }
    let report = same_everywhere(&fleet, "/global/spend/report?group_by=key").await;
    for g in report.as_array().unwrap() {
        let (key, bill) = by_key
            .iter()
            .find(|(k, _)| key_ids[*k] == g["key"].as_str().unwrap())
            .unwrap_or_else(|| panic!("unknown key in {report}"));
        assert_eq!(dec_of(&g["spend"]), bill.total(), "{key}: {g}");
        assert_eq!(g["lines"], json!(bill.lines), "{g}");
    }
    let report = same_everywhere(&fleet, "/global/spend/report?group_by=team").await;
    assert_eq!(report.as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report[0]["key"], "team-spend");
    assert_eq!(dec_of(&report[0]["spend"]), all.total());
    assert_eq!(report[0]["lines"], json!(all.lines));
    let report = same_everywhere(&fleet, "/global/spend/report?group_by=batch").await;
    assert_eq!(report.as_array().unwrap().len(), plan.len(), "{report}");
    for (batch, (i, (_, _, model, _))) in done.iter().zip(plan.iter().enumerate()) {
        let g = report
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == batch["id"])
            .unwrap_or_else(|| panic!("batch {i} not in {report}"));
        assert_eq!(
            dec_of(&g["spend"]),
            dec_of(&batch["cost"]["total"]),
            "{model} {g}"
        );
    }

    // The ledger rows: every line once, summing to the same figures.
    let logs = same_everywhere(&fleet, "/spend/logs?team_id=team-spend").await;
    let rows = logs.as_array().unwrap();
    let spend: Decimal = rows.iter().map(|r| dec_of(&r["spend"])).sum();
    let lines: u64 = rows.iter().map(|r| r["lines"].as_u64().unwrap()).sum();
    assert_eq!((spend, lines), (all.total(), all.lines));
}

/// A key's budget spent by a batch through A stops that batch on every
/// instance running its chunks, and B and C refuse the key's next batch
/// and upload with 400 `budget_exceeded`; the team's budget, lowered
/// through C below what the key spent through A, binds another key of the
/// team on B; budgets raised through C let both in again at once.
#[tokio::test]
async fn a_budget_spent_through_one_instance_binds_the_others() {
    let mock = mock(50).await;
    let fleet = Fleet::start(&mock, "  chunk_lines: 50\n").await;
    let [a, b, c] = [&fleet.gw[0], &fleet.gw[1], &fleet.gw[2]];

    let (status, team) = a
        .post(
            "/team/new",
            &json!({"team_id": "team-budget", "max_budget": 1000}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{team}");
    // Some 30 of the lines below (about 0.000016 each; at most
    // 11 × 0.00000065 + 16 × 0.00000145 = 0.00003035): far fewer than the
    // batch's 1000.
    let max_budget = dec("0.0005");
    let (spender, spender_id) = make_key(
        a,
        json!({"team_id": "team-budget", "max_budget": max_budget.to_string()}),
    )
    .await;
    let (teammate, _) = make_key(c, json!({"team_id": "team-budget"})).await;

    // Files uploaded on B and C while there is budget left.
    let later = varied_lines(ALPHA, 5, 3);
    let (status, file_b) = upload_by(b, &spender, ALPHA, later.clone()).await;
    assert_eq!(status, 200, "{file_b}");
    let (status, file_c) = upload_by(c, &teammate, ALPHA, later.clone()).await;
    assert_eq!(status, 200, "{file_c}");

    // A batch far over budget, through A; its chunks run on all three.
    let n = 1000;
    let input = varied_lines(ALPHA, n, 0);
    let id = submit(a, &spender, ALPHA, input.clone()).await;
    let done = c.wait_batch(&id, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let completed = done["request_counts"]["completed"].as_u64().unwrap();
    let failed = done["request_counts"]["failed"].as_u64().unwrap();
    eprintln!("budget batch: {completed} lines ran, {failed} stopped by the budget");
    assert!(
        completed > 0 && completed < n as u64,
        "stopped early: {done}"
    );
    assert_eq!(completed + failed, n as u64, "{done}");
    let (out, err) = b.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    for line in &err {
        assert_eq!(line["error"]["code"], "budget_exceeded", "{line}");
        assert!(line["response"].is_null(), "{line}");
    }
    // What ran is billed, exactly once: over the budget by at most the
    // lines in flight when the stop came, never short of what ran.
    let bill = bill_of(ALPHA, &input, &out);
    assert_eq!(bill.lines, completed);
    assert_eq!(dec_of(&done["cost"]["total"]), bill.total());
    let key = same_everywhere(&fleet, &format!("/key/info?key={spender_id}")).await;
    let spent = dec_of(&key["info"]["spend"]);
    assert_eq!(spent, bill.total());
    assert!(spent >= max_budget, "{spent} < {max_budget}");
    let team = same_everywhere(&fleet, "/team/info?team_id=team-budget").await;
    assert_eq!(dec_of(&team["team_info"]["spend"]), bill.total());
    eprintln!("key budget {max_budget}, spent {spent} through the fleet");

    // B and C refuse the key's new work at once, as docs/cost.md says.
    let refused = |what: &str, status: u16, body: &Value| {
        assert_eq!(status, 400, "{what}: {body}");
        assert_error_envelope(body);
        assert_eq!(body["error"]["type"], "invalid_request_error", "{what}");
        assert_eq!(body["error"]["code"], "budget_exceeded", "{what}");
    };
    let (status, body) = create_by(b, &spender, file_b["id"].as_str().unwrap()).await;
    refused("create on B", status, &body);
    for (name, gw) in [("B", b), ("C", c)] {
        let (status, body) = upload_by(gw, &spender, ALPHA, later.clone()).await;
        refused(&format!("upload on {name}"), status, &body);
    }
    // The teammate (no budget of its own) still works: the team has room.
    let (status, ok) = upload_by(b, &teammate, ALPHA, later.clone()).await;
    assert_eq!(status, 200, "{ok}");

    // C lowers the team's budget below what the spender spent through A:
    // B refuses the teammate's batch at once.
    let (status, t) = c
        .post(
            "/team/update",
            &json!({"team_id": "team-budget", "max_budget": spent.to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{t}");
    let (status, body) = create_by(b, &teammate, file_c["id"].as_str().unwrap()).await;
    refused("teammate's create on B", status, &body);

    // C raises both budgets: B lets the spender's batch in at once, and it
    // is billed on top, exactly.
    for (path, body) in [
        (
            "/team/update",
            json!({"team_id": "team-budget", "max_budget": 1000}),
        ),
        (
            "/key/update",
            json!({"key": spender_id, "max_budget": 1000}),
        ),
    ] {
        let (status, r) = c.post(path, &body).await.unwrap();
        assert_eq!(status, 200, "{path}: {r}");
    }
    let (status, again) = create_by(b, &spender, file_b["id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "after the raise: {again}");
    let again = a
        .wait_batch(again["id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(again["status"], "completed", "{again}");
    let (out2, err2) = c.results(&again).await.unwrap();
    assert!(err2.is_empty(), "{}", err2[0]);
    let extra = bill_of(ALPHA, &later, &out2);
    let key = same_everywhere(&fleet, &format!("/key/info?key={spender_id}")).await;
    assert_eq!(dec_of(&key["info"]["spend"]), spent + extra.total());
}
