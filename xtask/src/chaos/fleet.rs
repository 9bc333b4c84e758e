//! The processes a scenario runs: one `mock-vllm` (restartable on its port,
//! its counters carried across lives) and one `batchgate` (restartable on
//! its port and data directory), plus the input file whose bodies map back
//! to lines through the mock's body digests.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use batchgate_mock_vllm::{body_digest, MockStats, DEFAULT_MODEL};
use serde_json::{json, Value};

use crate::api::Api;
use crate::procs::{describe, free_port, Proc};

/// The gateway's master key in every scenario.
pub const KEY: &str = "sk-chaos";
/// The public model name clients use.
pub const MODEL: &str = "chaos-model";

/// A `mock-vllm` process. Stopping it keeps its counters (read just before
/// the stop) so [`Mock::stats`] covers every life on the same port.
#[derive(Debug)]
pub struct Mock {
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    port: u16,
    proc: Option<Proc>,
    pub url: String,
    latency: Duration,
    earlier: MockStats,
    http: reqwest::Client,
}

impl Mock {
    /// Starts `mock-vllm` on a free port with `args` (faults, seed) and
    /// `latency`; its stderr goes to `dir/mock.log`.
    pub fn start(bin: &Path, dir: &Path, latency: Duration, args: &[String]) -> Result<Mock> {
        let port = free_port()?;
        let mut all = vec!["--latency-ms".to_string(), latency.as_millis().to_string()];
        all.extend_from_slice(args);
        let mut mock = Mock {
            bin: bin.join("mock-vllm"),
            args: all,
            log: dir.join("mock.log"),
            port,
            proc: None,
            url: format!("http://127.0.0.1:{port}"),
            latency,
            earlier: MockStats::default(),
            http: reqwest::Client::new(),
        };
        mock.spawn()?;
        Ok(mock)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = File::options().create(true).append(true).open(&self.log)?;
        let (proc, _) = Proc::start(
            Command::new(&self.bin)
                .args(["--port", &self.port.to_string()])
                .args(&self.args)
                .stderr(Stdio::from(log)),
            "mock-vllm",
        )?;
        self.proc = Some(proc);
        Ok(())
    }

    /// The counters of the running life only.
    async fn current(&self) -> Result<MockStats> {
        let r = self
            .http
            .get(format!("{}/mock/stats", self.url))
            .send()
            .await?;
        Ok(r.error_for_status()?.json().await?)
    }

    /// Counters over every life of this mock.
    pub async fn stats(&self) -> Result<MockStats> {
        let mut total = self.earlier.clone();
        if self.proc.is_some() {
            merge(&mut total, &self.current().await?);
        }
        Ok(total)
    }

    /// An abrupt outage. New requests are first made to hang, then, once
    /// every request already past that point has been answered (one
    /// latency), the counters are read and the process is SIGKILLed: the
    /// 200 counts stay exact; attempts that arrived in the last instant
    /// before the kill may go uncounted.
    pub async fn crash(&mut self) -> Result<()> {
        let freeze = json!({"drop_rate": 0.0, "hang_rate": 1.0, "fail_rate": 0.0, "rate_limit_rate": 0.0, "fail_first_n": 0});
        self.http
            .post(format!("{}/mock/faults", self.url))
            .json(&freeze)
            .send()
            .await?
            .error_for_status()?;
        tokio::time::sleep(self.latency + Duration::from_millis(150)).await;
        let last = self.current().await?;
        merge(&mut self.earlier, &last);
        if let Some(mut proc) = self.proc.take() {
            proc.kill9()?;
        }
        Ok(())
    }

    /// Starts a new life on the same port, faults as first configured.
    pub fn restart(&mut self) -> Result<()> {
        self.spawn()
    }
}

/// Adds `b`'s counters to `a`.
fn merge(a: &mut MockStats, b: &MockStats) {
    a.requests += b.requests;
    a.succeeded += b.succeeded;
    a.prompt_tokens += b.prompt_tokens;
    a.completion_tokens += b.completion_tokens;
    for (k, v) in &b.by_endpoint {
        *a.by_endpoint.entry(k.clone()).or_insert(0) += v;
    }
    for (map, other) in [
        (&mut a.by_body, &b.by_body),
        (&mut a.succeeded_by_body, &b.succeeded_by_body),
    ] {
        for (k, v) in other {
            *map.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// The deployment's settings that differ between scenarios.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    pub parallel: usize,
    /// `litellm_params.timeout` in seconds (the default is 600).
    pub timeout_secs: Option<u64>,
}

/// The config file: one deployment of [`MODEL`] in front of `upstream`.
pub fn config_yaml(upstream: &str, cfg: &GatewayConfig) -> String {
    let timeout = cfg
        .timeout_secs
        .map(|t| format!("    timeout: {t}\n"))
        .unwrap_or_default();
    format!(
        "model_list:\n- model_name: {MODEL}\n  litellm_params:\n    model: hosted_vllm/{DEFAULT_MODEL}\n    api_base: {upstream}\n    max_parallel_requests: {}\n    batch_api: gateway\n{timeout}general_settings:\n  master_key: {KEY}\n",
        cfg.parallel
    )
}

/// A `batchgate` process on a fixed port and data directory, restartable;
/// remembers how each of its lives ended and the 5xx answers it gave.
#[derive(Debug)]
pub struct Gateway {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    proc: Option<Proc>,
    pub api: Api,
    /// How each stopped life ended: `SIGKILL`, `0`, `exited by itself: 2`, ….
    pub exits: Vec<String>,
    /// Status codes of the 5xx answers the scenario's own calls got.
    pub five_xx: Vec<u16>,
}

impl Gateway {
    /// Writes `dir/config.yaml` and starts the gateway with `data` as its
    /// data directory; stderr goes to `dir/gateway.log`.
    pub fn start(bin: &Path, dir: &Path, data: &Path, config: &str) -> Result<Gateway> {
        std::fs::write(dir.join("config.yaml"), config)?;
        let port = free_port()?;
        let mut gw = Gateway {
            bin: bin.join("batchgate"),
            dir: dir.to_path_buf(),
            data: data.to_path_buf(),
            port,
            proc: None,
            api: Api::new(&format!("http://127.0.0.1:{port}"), KEY)?,
            exits: Vec::new(),
            five_xx: Vec::new(),
        };
        gw.spawn()?;
        Ok(gw)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("gateway.log"))?;
        let (proc, _) = Proc::start(
            Command::new(&self.bin)
                .arg("--config")
                .arg(self.dir.join("config.yaml"))
                .args(["--port", &self.port.to_string(), "--data-dir"])
                .arg(&self.data)
                .env("RUST_LOG", "warn")
                .stderr(Stdio::from(log)),
            "batchgate",
        )?;
        self.proc = Some(proc);
        Ok(())
    }

    /// Starts a new life on the same port and data directory.
    pub fn restart(&mut self) -> Result<()> {
        self.spawn()
    }

    /// SIGKILL, like a crash or the OOM killer.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut proc) = self.proc.take() {
            let status = proc.kill9()?;
            self.exits.push(describe(status));
        }
        Ok(())
    }

    /// SIGTERM and wait up to `patience` (then SIGKILL); returns how long
    /// the stop took.
    pub async fn terminate(&mut self, patience: Duration) -> Result<Duration> {
        let t = std::time::Instant::now();
        if let Some(mut proc) = self.proc.take() {
            let (status, forced) = proc.terminate(patience).await?;
            self.exits.push(if forced {
                format!("SIGKILL after {}s SIGTERM", patience.as_secs())
            } else {
                describe(status)
            });
        }
        Ok(t.elapsed())
    }

    /// False (and the exit recorded) if the process has ended on its own.
    pub fn alive(&mut self) -> Result<bool> {
        let Some(proc) = self.proc.as_mut() else {
            return Ok(false);
        };
        match proc.try_wait()? {
            None => Ok(true),
            Some(status) => {
                self.exits
                    .push(format!("exited by itself: {}", describe(status)));
                self.proc = None;
                Ok(false)
            }
        }
    }

    /// The batch object, or `None` when the gateway did not answer 200
    /// (down, restarting, or a 5xx, which is recorded).
    pub async fn batch(&mut self, id: &str) -> Option<Value> {
        match self.api.batch(id).await {
            Ok((200, v)) => Some(v),
            Ok((status, _)) => {
                self.note_status(status);
                None
            }
            Err(_) => None,
        }
    }

    /// Records `status` if it is a 5xx.
    pub fn note_status(&mut self, status: u16) {
        if status >= 500 {
            self.five_xx.push(status);
        }
    }
}

/// The input file and what maps results and upstream requests back to lines.
#[derive(Debug)]
pub struct Input {
    pub path: PathBuf,
    pub custom_ids: Vec<String>,
    /// Digest of the body the upstream receives (model rewritten to the
    /// served name) → index into `custom_ids`.
    pub digests: HashMap<String, usize>,
}

/// Writes `n` chat lines whose message names their own `custom_id`, so every
/// line's body — and so its digest — is unique.
pub fn write_input(path: &Path, n: usize) -> Result<Input> {
    let mut f = BufWriter::new(File::create(path).with_context(|| path.display().to_string())?);
    let mut custom_ids = Vec::with_capacity(n);
    let mut digests = HashMap::with_capacity(n);
    for i in 0..n {
        let id = format!("chaos-{i}");
        let mut body = json!({
            "model": MODEL,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": format!("{id}: the quick brown fox jumps over the lazy dog")}],
        });
        let line =
            json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions", "body": body});
        writeln!(f, "{line}")?;
        // What the gateway sends: the same body with the served model name.
        body["model"] = Value::String(DEFAULT_MODEL.to_string());
        if digests.insert(body_digest(&body), i).is_some() {
            return Err(anyhow!("two lines share a body digest"));
        }
        custom_ids.push(id);
    }
    f.flush()?;
    Ok(Input {
        path: path.to_path_buf(),
        custom_ids,
        digests,
    })
}
