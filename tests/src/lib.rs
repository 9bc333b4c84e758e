//! A harness for end-to-end tests: the real `batchgate` binary (built once
//! per test run), started on a free port with a config and data directory of
//! the test's own, killed and restarted at will, plus helpers that speak the
//! OpenAI Files/Batch API to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod a11y;
pub mod in_process;
mod keyed;
pub mod one_model;
pub mod s3;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use batchgate_mock_vllm::{Faults, MockConfig, MockHandle, MockVllm};

/// The master key every harness config uses.
pub const MASTER_KEY: &str = "sk-1234";

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Path of a workspace binary, built (debug profile) on first use.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "batchgate"])
            .args(["-p", "batchgate-mock-vllm"])
            .current_dir(workspace_root());
        // Without what cargo set for this test (as xtask's builds do): ring's
        // build script reruns when CARGO_MANIFEST_DIR changes, so this build
        // and the next plain `cargo build`/`cargo test` would each rebuild
        // ring and everything above it.
        for (name, _) in std::env::vars_os() {
            let n = name.to_string_lossy();
            if n.starts_with("CARGO_PKG_")
                || n.starts_with("CARGO_MANIFEST_")
                || n == "CARGO_CRATE_NAME"
            {
                cmd.env_remove(&name);
            }
        }
        let status = cmd.status().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("cargo build failed: {status}"))
        }
    });
    if let Err(e) = built {
        panic!("cannot build binaries: {e}");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join(name)
}

/// A config with one deployment per `(model_name, api_base)` and extra YAML
/// appended (e.g. a `batch_settings:` block).
pub fn config(models: &[(&str, &str)], extra: &str) -> String {
    let mut out = String::from("model_list:\n");
    for (name, base) in models {
        out.push_str(&format!(
            "- model_name: {name}\n  litellm_params:\n    model: hosted_vllm/{}\n    api_base: {base}\n",
            batchgate_mock_vllm::DEFAULT_MODEL
        ));
    }
    out.push_str(&format!("general_settings:\n  master_key: {MASTER_KEY}\n"));
    out.push_str(extra);
    out
}

/// A running gateway process.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    pub base: String,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    pub http: reqwest::Client,
}

/// The `batchgate` command for a test directory holding `config.yaml`.
fn gateway_command(dir: &Path, port: u16, args: &[String], envs: &[(String, String)]) -> Command {
    let mut cmd = Command::new(binary("batchgate"));
    cmd.arg("--config")
        .arg(dir.join("config.yaml"))
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        // A developer's DATABASE_URL must not move every test onto it; the
        // Postgres tests pass theirs in `envs`.
        .env_remove("DATABASE_URL")
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn owned_args(args: &[&str], envs: &[(&str, &str)]) -> (Vec<String>, Vec<(String, String)>) {
    (
        args.iter().map(|a| a.to_string()).collect(),
        envs.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

impl Gateway {
    /// Writes `config_yaml` and starts the binary on a free port.
    pub async fn start(config_yaml: &str) -> Result<Gateway> {
        Self::start_with(config_yaml, &[], &[]).await
    }

    /// Like [`Gateway::start`], with extra command-line `args` and environment
    /// variables `envs` for the process ([`Gateway::restart`] repeats them).
    pub async fn start_with(
        config_yaml: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Gateway> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("config.yaml"), config_yaml)?;
        let port = free_port()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let (args, envs) = owned_args(args, envs);
        let mut gw = Gateway {
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            args,
            envs,
            http,
        };
        gw.spawn().await?;
        Ok(gw)
    }

    /// The data directory (SQLite file, blobs, secret).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn spawn(&mut self) -> Result<()> {
        let mut child = gateway_command(self.dir.path(), self.port, &self.args, &self.envs)
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn batchgate")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("listening on") {
                    return Ok::<_, anyhow::Error>(());
                }
            }
            bail!("batchgate exited before listening")
        })
        .await
        .map_err(|_| anyhow!("batchgate did not start in time"))?;
        ready?;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no shutdown code runs, like a crash or the OOM killer.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// SIGTERM and wait: a graceful stop.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().ok_or_else(|| anyhow!("not running"))?;
        if let Some(pid) = child.id() {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
        }
        Ok(tokio::time::timeout(Duration::from_secs(30), child.wait()).await??)
    }

    /// Starts the binary again on the same port, config and data.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await?;
        self.spawn().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with the master key; returns status and JSON body.
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(MASTER_KEY)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// POST JSON with the master key.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(MASTER_KEY)
            .json(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// Uploads `content` as a batch file for `model` (via `x-litellm-model`).
    pub async fn upload(&self, model: &str, filename: &str, content: Vec<u8>) -> Result<Value> {
        let part = reqwest::multipart::Part::bytes(content).file_name(filename.to_string());
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part("file", part);
        let r = self
            .http
            .post(self.url("/v1/files"))
            .bearer_auth(MASTER_KEY)
            .header("x-litellm-model", model)
            .multipart(form)
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        if !status.is_success() {
            bail!("upload failed: {status} {body}");
        }
        Ok(body)
    }

    /// Creates a batch over `file_id`.
    pub async fn create_batch(&self, file_id: &str, endpoint: &str, window: &str) -> Result<Value> {
        let (status, body) = self
            .post(
                "/v1/batches",
                &serde_json::json!({"input_file_id": file_id, "endpoint": endpoint, "completion_window": window}),
            )
            .await?;
        if status != 200 {
            bail!("create batch failed: {status} {body}");
        }
        Ok(body)
    }

    /// Uploads `content` for `model`, runs it as a chat batch with a 24 h
    /// window and waits (up to `timeout`) until it ends.
    pub async fn run_chat_batch(
        &self,
        model: &str,
        content: Vec<u8>,
        timeout: Duration,
    ) -> Result<Value> {
        let file = self.upload(model, "input.jsonl", content).await?;
        let file_id = file["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no file id: {file}"))?;
        let created = self
            .create_batch(file_id, "/v1/chat/completions", "24h")
            .await?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no batch id: {created}"))?;
        self.wait_batch(id, timeout).await
    }

    /// Polls until the batch reaches a terminal status (or `timeout`).
    pub async fn wait_batch(&self, id: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, batch) = self.get(&format!("/v1/batches/{id}")).await?;
            if status != 200 {
                bail!("retrieve failed: {status} {batch}");
            }
            if matches!(
                batch["status"].as_str(),
                Some("completed" | "failed" | "expired" | "cancelled")
            ) {
                return Ok(batch);
            }
            if Instant::now() > deadline {
                bail!("batch did not end in {timeout:?}: {batch}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A file's content as text.
    pub async fn content(&self, file_id: &str) -> Result<String> {
        let r = self
            .http
            .get(self.url(&format!("/v1/files/{file_id}/content")))
            .bearer_auth(MASTER_KEY)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("content failed: {}", r.status());
        }
        Ok(r.text().await?)
    }

    /// A file's content parsed as JSONL.
    pub async fn jsonl(&self, file_id: Option<&str>) -> Result<Vec<Value>> {
        let Some(id) = file_id else { return Ok(vec![]) };
        self.content(id)
            .await?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(Into::into))
            .collect()
    }
}

/// `n` chat lines for `model`, custom ids `req-1..=n`.
pub fn chat_lines(model: &str, n: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 1..=n {
        out.push_str(&serde_json::json!({
            "custom_id": format!("req-{i}"),
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": format!("line {i} says hello")}]}
        }).to_string());
        out.push('\n');
    }
    out.into_bytes()
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

// ---------------------------------------------------------------------------
// Helpers for the Files API, HTTP hygiene and CLI tests.

/// Asserts `body` is an OpenAI error envelope: a single `error` key holding
/// exactly `message`, `type`, `param` and `code`, with `message`/`type`
/// strings, `param` a string or null and `code` a string or null.
pub fn assert_error_envelope(body: &Value) {
    let top = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not an object: {body}"));
    assert_eq!(top.keys().collect::<Vec<_>>(), ["error"], "{body}");
    let e = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("`error` is not an object: {body}"));
    let mut keys: Vec<_> = e.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "param", "type"], "{body}");
    assert!(e["message"].is_string() && e["type"].is_string(), "{body}");
    assert!(e["param"].is_string() || e["param"].is_null(), "{body}");
    assert!(e["code"].is_string() || e["code"].is_null(), "{body}");
}

/// Every regular file under `dir`, recursively (none if `dir` is missing).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs the binary with `config_yaml`, `args` and `envs`, expecting it to
/// exit without serving; returns its exit status and stderr. Fails if it
/// starts listening instead.
pub async fn run_until_exit(
    config_yaml: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<(std::process::ExitStatus, String)> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("config.yaml"), config_yaml)?;
    let port = free_port()?;
    let (args, envs) = owned_args(args, envs);
    let child = gateway_command(dir.path(), port, &args, &envs)
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn batchgate")?;
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| anyhow!("batchgate kept running; expected it to exit"))??;
    if String::from_utf8_lossy(&out.stdout).contains("listening on") {
        bail!("batchgate started listening; expected it to refuse");
    }
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

// ---------------------------------------------------------------------------
// Helpers for the batch tests (lifecycle, faults, crash, replicas).

/// One `model_list` entry: `model_name` served upstream as `served_model` at
/// `api_base`, with `params` appended to its `litellm_params` (each item a
/// `key: value` YAML pair, e.g. `("max_parallel_requests", "4")`).
pub fn model_entry(
    model_name: &str,
    served_model: &str,
    api_base: &str,
    params: &[(&str, &str)],
) -> String {
    let mut out = format!(
        "- model_name: {model_name}\n  litellm_params:\n    model: hosted_vllm/{served_model}\n    api_base: {api_base}\n"
    );
    for (k, v) in params {
        out.push_str(&format!("    {k}: {v}\n"));
    }
    out
}

/// A config from [`model_entry`] entries, the harness master key and extra
/// YAML appended (e.g. a `batch_settings:` block).
pub fn config_of_entries(entries: &[String], extra: &str) -> String {
    let mut out = String::from("model_list:\n");
    for e in entries {
        out.push_str(e);
    }
    out.push_str(&format!("general_settings:\n  master_key: {MASTER_KEY}\n"));
    out.push_str(extra);
    out
}

impl Gateway {
    /// `GET /v1/batches/{id}`, which must answer 200.
    pub async fn batch(&self, id: &str) -> Result<Value> {
        let (status, batch) = self.get(&format!("/v1/batches/{id}")).await?;
        if status != 200 {
            bail!("retrieve failed: {status} {batch}");
        }
        Ok(batch)
    }

    /// Polls the batch every 50 ms until `pred` holds for it; fails after
    /// `timeout` or if the batch ends first without satisfying `pred`.
    pub async fn wait_batch_until(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let batch = self.batch(id).await?;
            if pred(&batch) {
                return Ok(batch);
            }
            if matches!(
                batch["status"].as_str(),
                Some("completed" | "failed" | "expired" | "cancelled")
            ) {
                bail!("batch ended before the condition held: {batch}");
            }
            if Instant::now() > deadline {
                bail!("condition not met in {timeout:?}: {batch}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// DELETE with the master key; returns status and JSON body.
    pub async fn http_delete(&self, path: &str) -> Result<(u16, Value)> {
        let r = self
            .http
            .delete(self.url(path))
            .bearer_auth(MASTER_KEY)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// The output and error files of an ended batch, parsed.
    pub async fn results(&self, batch: &Value) -> Result<(Vec<Value>, Vec<Value>)> {
        let out = self.jsonl(batch["output_file_id"].as_str()).await?;
        let err = self.jsonl(batch["error_file_id"].as_str()).await?;
        Ok((out, err))
    }
}

/// The `custom_id` of each result line, in file order.
pub fn custom_ids_of(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Asserts that `req-1..=n` each appear exactly once across the output and
/// error lines, and nothing else does.
pub fn assert_every_id_once(out: &[Value], err: &[Value], n: usize) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for id in custom_ids_of(out).into_iter().chain(custom_ids_of(err)) {
        *seen.entry(id).or_default() += 1;
    }
    let repeated: Vec<_> = seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(id, c)| format!("{id}×{c}"))
        .collect();
    assert!(repeated.is_empty(), "custom ids repeated: {repeated:?}");
    let missing: Vec<_> = (1..=n)
        .map(|i| format!("req-{i}"))
        .filter(|id| !seen.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} custom ids missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(seen.len(), n, "unexpected custom ids present");
}

impl Gateway {
    /// Any method with the master key; status and JSON body (null if the
    /// body is not JSON).
    pub async fn call(&self, method: reqwest::Method, path: &str) -> Result<(u16, Value)> {
        let r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(MASTER_KEY)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// GET with the master key; status and raw body bytes.
    pub async fn get_bytes(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(MASTER_KEY)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.bytes().await?.to_vec()))
    }
}

/// The `id` of every item of a list page.
pub fn list_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
