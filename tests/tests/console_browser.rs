//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromedriver`; `cargo xtask ci` installs them and requires this test to
//! run): sign in, watch a batch go from in_progress to completed, open it,
//! download its output, cancel another, retry a failed one, create a batch
//! from a file, see spend and the fleet, and check that a virtual key sees
//! none of a stranger's batches. Every view is checked for labels, contrast
//! and sideways overflow at a laptop and a phone width, and photographed
//! (target/console-screenshots; docs/console with
//! BATCHGATE_UPDATE_SCREENSHOTS=1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use batchgate_tests::webdriver::{browser_paths, Browser};
use batchgate_tests::{a11y, chat_lines, Faults, Gateway, MockConfig, MockVllm, MASTER_KEY};
use reqwest::Method;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

struct Shots {
    dirs: Vec<PathBuf>,
}

impl Shots {
    fn new() -> Shots {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| batchgate_tests::workspace_root().join("target"));
        let mut dirs = vec![target.join("console-screenshots")];
        if std::env::var_os("BATCHGATE_UPDATE_SCREENSHOTS").is_some() {
            dirs.push(batchgate_tests::workspace_root().join("docs/console"));
        }
        Shots { dirs }
    }

    async fn take(&self, b: &Browser, name: &str) {
        // A message left over from the previous step is not part of the view.
        b.js(
            "document.getElementById('toast').textContent = ''",
            json!([]),
        )
        .await
        .unwrap();
        for d in &self.dirs {
            b.screenshot(&d.join(format!("{name}.png"))).await.unwrap();
        }
    }
}

fn config(slow: &str, flaky: &str) -> String {
    format!(
        "model_list:\n\
- model_name: llama-slow\n  litellm_params:\n    model: hosted_vllm/{m}\n    api_base: {slow}\n    max_parallel_requests: 1\n  model_info:\n    input_cost_per_token: 0.000002\n    output_cost_per_token: 0.000004\n\
- model_name: llama-flaky\n  litellm_params:\n    model: hosted_vllm/{m}\n    api_base: {flaky}\n\
general_settings:\n  master_key: {MASTER_KEY}\n\
batch_settings:\n  max_attempts: 1\n  outage_threshold: 100000\n  cancel_grace_seconds: 2\n",
        m = batchgate_mock_vllm::DEFAULT_MODEL,
    )
}

async fn start_batch(gw: &Gateway, model: &str, n: usize) -> String {
    let file = gw
        .upload(model, "requests.jsonl", chat_lines(model, n))
        .await
        .unwrap();
    let b = gw
        .create_batch(file["id"].as_str().unwrap(), "/v1/chat/completions", "24h")
        .await
        .unwrap();
    b["id"].as_str().unwrap().to_string()
}

/// Waits until `css` matches (DOM state, polled).
async fn wait_for(b: &Browser, css: &str) {
    b.find(css, T).await.unwrap();
}

async fn text_of(b: &Browser, css: &str) -> String {
    b.find(css, T).await.unwrap();
    let v = b
        .js(
            "return document.querySelector(arguments[0]).textContent",
            json!([css]),
        )
        .await
        .unwrap();
    v.as_str().unwrap_or_default().trim().to_string()
}

/// Labels and contrast on the page shown.
async fn accessible(b: &Browser, view: &str) {
    let unlabelled = a11y::unlabelled(b).await.unwrap();
    assert!(
        unlabelled.is_empty(),
        "{view}: unlabelled controls {unlabelled:?}"
    );
    let low = a11y::low_contrast(b).await.unwrap();
    assert!(low.is_empty(), "{view}: low contrast {low:?}");
    assert_eq!(
        a11y::overflow_px(b).await.unwrap(),
        0,
        "{view}: page scrolls sideways"
    );
}

async fn sign_in(b: &Browser, base: &str, key: &str) {
    b.goto(&format!("{base}/ui/")).await.unwrap();
    let input = b.find("#key", T).await.unwrap();
    b.type_into(&input, key).await.unwrap();
    b.click_on("#signin-submit", T).await.unwrap();
    wait_for(b, "#batches-table table").await;
}

/// A file that appears in `dir` (and is complete) within the timeout.
fn downloaded(dir: &Path, name: &str) -> String {
    let deadline = Instant::now() + T;
    let path = dir.join(name);
    loop {
        let partial = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "crdownload"))
            })
            .unwrap_or(false);
        if !partial {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if !text.is_empty() {
                    return text;
                }
            }
        }
        assert!(Instant::now() < deadline, "{name} was not downloaded");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn the_console_in_a_real_browser() {
    if browser_paths().is_none() {
        assert!(
            std::env::var_os("BATCHGATE_REQUIRE_BROWSER").is_none(),
            "BATCHGATE_REQUIRE_BROWSER is set but chromium/chromedriver are missing"
        );
        eprintln!(
            "skipped: chromium and chromedriver are not installed (cargo xtask ci installs them)"
        );
        return;
    }
    // One slow upstream, so batches are visibly in progress; one that
    // answers every body's first attempt with a 500, so lines fail once.
    let slow = MockVllm::start(MockConfig {
        latency: Duration::from_millis(400),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let flaky = MockVllm::start(MockConfig {
        faults: Faults {
            fail_first_n: 1,
            ..Faults::default()
        },
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let gw = Gateway::start(&config(&slow.base_url(), &flaky.base_url()))
        .await
        .unwrap();
    let failing = start_batch(&gw, "llama-flaky", 3).await;
    let failed = gw.wait_batch(&failing, T).await.unwrap();
    assert_eq!(failed["request_counts"]["failed"], 3, "{failed}");
    let running = start_batch(&gw, "llama-slow", 8).await;
    let doomed = start_batch(&gw, "llama-slow", 200).await;

    let downloads = tempfile::tempdir().unwrap();
    let b = Browser::start(1280, 900, downloads.path()).await.unwrap();
    let shots = Shots::new();
    let base = gw.base.clone();

    b.goto(&format!("{base}/ui")).await.unwrap();
    wait_for(&b, "#signin-submit").await;
    // What the first load downloaded, as the browser counts it.
    let weight = b
        .js(
            "return [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]\
               .reduce((n, e) => n + e.encodedBodySize, 0)",
            json!([]),
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    eprintln!("console first load: {weight} bytes");
    assert!(
        (10_000..1_000_000).contains(&weight),
        "first load: {weight} bytes"
    );
    accessible(&b, "sign-in").await;
    shots.take(&b, "signin").await;
    sign_in(&b, &base, MASTER_KEY).await;

    watch_running(&b, &gw, &shots, &running, downloads.path()).await;
    cancel(&b, &base, &shots, &doomed).await;
    retry(&b, &base, &shots, &failing).await;
    keyboard(&b, &base).await;
    other_views(&b, &base, &shots, &gw, &running).await;
    phone(&b, &base, &shots, &running).await;
    virtual_key(&b, &base, &gw, &shots, &running).await;
    b.quit().await.unwrap();
}

/// The list shows the batch in progress, then completed by itself; its page
/// downloads the output.
async fn watch_running(b: &Browser, gw: &Gateway, shots: &Shots, id: &str, downloads: &Path) {
    let row = format!("tr[data-batch=\"{id}\"]");
    wait_for(b, &format!("{row}[data-status=\"in_progress\"]")).await;
    accessible(b, "batches").await;
    shots.take(b, "batches").await;
    wait_for(b, &format!("{row}[data-status=\"completed\"]")).await;
    assert_eq!(text_of(b, &format!("{row} td:nth-child(7)")).await, "8");

    b.click_on(&format!("{row} a"), T).await.unwrap();
    wait_for(b, "#batch-status[data-status=\"completed\"]").await;
    assert_eq!(text_of(b, "#counts-completed").await, "8");
    assert!(text_of(b, "#batch-cost").await.starts_with('$'));
    assert!(text_of(b, "#timeline").await.contains("completed"));
    b.click_on("#dl-output", T).await.unwrap();
    let got = downloaded(downloads, &format!("{id}_output.jsonl"));
    let batch = gw.batch(id).await.unwrap();
    let expected = gw
        .content(batch["output_file_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(got, expected);
    accessible(b, "batch").await;
    shots.take(b, "batch").await;
}

async fn cancel(b: &Browser, base: &str, shots: &Shots, id: &str) {
    b.goto(&format!("{base}/ui/#/batches/{id}")).await.unwrap();
    wait_for(b, "#batch-status[data-status=\"in_progress\"]").await;
    wait_for(b, "#btn-cancel").await;
    accessible(b, "batch in progress").await;
    shots.take(b, "batch-in-progress").await;
    b.click_on("#btn-cancel", T).await.unwrap();
    b.click_on("#btn-cancel-confirm", T).await.unwrap();
    wait_for(b, "#batch-status[data-status=\"cancelled\"]").await;
    wait_for(b, "#btn-retry").await;
}

async fn retry(b: &Browser, base: &str, shots: &Shots, id: &str) {
    b.goto(&format!("{base}/ui/#/batches/{id}")).await.unwrap();
    let group = "#errors .group[data-code=\"http_500\"]";
    wait_for(b, &format!("{group} .lines")).await;
    assert_eq!(text_of(b, &format!("{group} .lines")).await, "1–3");
    assert!(text_of(b, group).await.contains("3 lines"));
    accessible(b, "batch with errors").await;
    b.js(
        "document.querySelector('#errors').scrollIntoView()",
        json!([]),
    )
    .await
    .unwrap();
    shots.take(b, "batch-errors").await;
    b.click_on("#btn-retry", T).await.unwrap();
    wait_for(b, &format!("#retry-of[href=\"#/batches/{id}\"]")).await;
    wait_for(b, "#batch-status[data-status=\"completed\"]").await;
    assert_eq!(text_of(b, "#counts-completed").await, "3");
}

/// Tab reaches the first batch's link from the top of the page, Enter opens it.
async fn keyboard(b: &Browser, base: &str) {
    // A fresh load, so focus starts at the top of the document.
    b.goto("about:blank").await.unwrap();
    b.goto(&format!("{base}/ui/#/batches")).await.unwrap();
    wait_for(b, "#batches-table tr[data-batch] a").await;
    b.keys(TAB).await.unwrap();
    let first = b
        .js("return document.activeElement.id", json!([]))
        .await
        .unwrap();
    assert_eq!(first, "skip", "the skip link comes first");
    let target = "document.activeElement.matches('#batches-table tr[data-batch] a')";
    let mut reached = false;
    for _ in 0..40 {
        b.keys(TAB).await.unwrap();
        if b.js(&format!("return {target}"), json!([])).await.unwrap() == Value::Bool(true) {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached a batch link");
    b.keys(ENTER).await.unwrap();
    b.wait_js("the batch page", "return location.hash.startsWith('#/batches/batch_') && document.querySelector('#batch-status')", T)
        .await
        .unwrap();
}

async fn other_views(b: &Browser, base: &str, shots: &Shots, gw: &Gateway, running: &str) {
    // Files: create a batch from the input of the finished one.
    b.goto(&format!("{base}/ui/#/files")).await.unwrap();
    let input = gw.batch(running).await.unwrap()["input_file_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(b, &format!("tr[data-file=\"{input}\"]")).await;
    accessible(b, "files").await;
    shots.take(b, "files").await;
    b.click_on(&format!("#new-{input}"), T).await.unwrap();
    b.click_on(&format!("#create-{input}"), T).await.unwrap();
    wait_for(b, "#batch-status").await;
    let hash = b.js("return location.hash", json!([])).await.unwrap();
    let new_id = hash
        .as_str()
        .unwrap()
        .trim_start_matches("#/batches/")
        .to_string();
    assert_eq!(
        gw.batch(&new_id).await.unwrap()["input_file_id"],
        input.as_str()
    );
    gw.post(&format!("/v1/batches/{new_id}/cancel"), &json!({}))
        .await
        .unwrap();

    b.goto(&format!("{base}/ui/#/spend")).await.unwrap();
    wait_for(b, "#spend-total").await;
    assert_ne!(
        text_of(b, "#spend-total").await,
        "$0.00",
        "the priced batch costs something"
    );
    accessible(b, "spend").await;
    shots.take(b, "spend").await;

    b.goto(&format!("{base}/ui/#/fleet")).await.unwrap();
    b.wait_js(
        "two healthy deployments",
        "return document.querySelectorAll('#fleet-table .s-healthy').length >= 4",
        T,
    )
    .await
    .unwrap();
    // Each deployment's concurrency: adaptive, up to its ceiling.
    assert!(text_of(b, "#fleet-table").await.contains("of ≤"));
    wait_for(b, "#instances-table tr[data-instance]").await;
    assert!(text_of(b, "#instances-table").await.contains("(this one)"));
    accessible(b, "fleet").await;
    shots.take(b, "fleet").await;
}

/// At a phone's width no view scrolls sideways (wide tables scroll inside
/// their frame).
async fn phone(b: &Browser, base: &str, shots: &Shots, running: &str) {
    b.set_size(390, 844).await.unwrap();
    for (view, ready) in [
        ("batches", "#batches-table table"),
        (&format!("batches/{running}") as &str, "#batch-status"),
        ("files", "#files-table table"),
        ("spend", "#spend-total"),
        ("fleet", "#fleet-table table"),
    ] {
        b.goto(&format!("{base}/ui/#/{view}")).await.unwrap();
        wait_for(b, ready).await;
        accessible(b, &format!("{view} (phone)")).await;
        if view == "batches" {
            shots.take(b, "phone-batches").await;
        }
    }
    b.set_size(1280, 900).await.unwrap();
}

/// A virtual key sees its own batch and nothing of the master's, in the
/// list and by ID.
async fn virtual_key(b: &Browser, base: &str, gw: &Gateway, shots: &Shots, stranger: &str) {
    let key = gw
        .new_key(&json!({"team_id": "research", "key_alias": "alice"}))
        .await
        .unwrap();
    let file = gw
        .upload_as(&key, "llama-flaky", chat_lines("llama-flaky", 2))
        .await
        .unwrap();
    let (status, own) = gw
        .call_as(&key, Method::POST, "/v1/batches", Some(&json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"})))
        .await
        .unwrap();
    assert_eq!(status, 200, "{own}");
    b.click_on("#signout", T).await.unwrap();
    wait_for(b, "#signin-submit").await;
    sign_in(b, base, &key).await;
    let own_row = format!("tr[data-batch=\"{}\"]", own["id"].as_str().unwrap());
    wait_for(b, &own_row).await;
    let rows = b
        .js(
            "return document.querySelectorAll('#batches-table tr[data-batch]').length",
            json!([]),
        )
        .await
        .unwrap();
    assert_eq!(rows, 1, "a virtual key sees only its own batch");
    assert!(text_of(b, "#who-label").await.contains("alice"));
    shots.take(b, "virtual-key").await;
    // Its spend: its own budgets; the ledger is the master's.
    b.goto(&format!("{base}/ui/#/spend")).await.unwrap();
    assert!(text_of(b, "#spend .note").await.contains("master key"));
    accessible(b, "spend (virtual key)").await;
    b.goto(&format!("{base}/ui/#/batches/{stranger}"))
        .await
        .unwrap();
    let error = text_of(b, "#view-error").await;
    assert!(
        error.contains("No such batch") && error.contains("404"),
        "{error}"
    );
}
