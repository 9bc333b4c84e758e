//! [`OpenAiUpstream`]: the [`Upstream`] of any server that speaks OpenAI's
//! HTTP API — `POST {api_base}/v1/<endpoint>` with a bearer key, errors in
//! OpenAI's envelope, `usage` in OpenAI's shape. Providers compose it with
//! what their server does differently (its health route, its name, where
//! and how it reports its load).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use batchgate_core::{Deployment, Reply, ServerLoad, Upstream};
use serde_json::{Map, Value};

/// A health probe slower than this (or than the deployment's timeout)
/// counts as no answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// A load scrape slower than this counts as no answer: the engine decides
/// its concurrency four times a second and would rather use latency than
/// wait.
const LOAD_TIMEOUT: Duration = Duration::from_millis(800);

/// Where a server reports its load and how to read it: a provider's
/// knowledge of its server's metrics (vLLM: Prometheus text at `/metrics`).
#[derive(Debug, Clone, Copy)]
pub struct LoadProbe {
    /// The route, relative to `api_base`.
    pub path: &'static str,
    /// Reads the body of a 2xx answer; the second argument is the served
    /// model name. `None` when the figures are not there.
    pub parse: fn(&str, &str) -> Option<ServerLoad>,
}

/// An HTTP client fit for batch traffic: many idle connections kept per
/// server (a batch keeps hundreds of requests in flight), a bounded connect.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .connect_timeout(Duration::from_secs(10))
        .build()
}

/// One deployment's OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct OpenAiUpstream {
    http: reqwest::Client,
    deployment: Arc<Deployment>,
    system: &'static str,
    health_path: &'static str,
    load_probe: Option<LoadProbe>,
}

impl OpenAiUpstream {
    /// `system` is what spans report as `gen_ai.system`; `health_path` the
    /// route probed for liveness, relative to `api_base` (vLLM: `/health`;
    /// `/v1/models` for servers without one).
    pub fn new(
        http: reqwest::Client,
        deployment: Arc<Deployment>,
        system: &'static str,
        health_path: &'static str,
    ) -> OpenAiUpstream {
        OpenAiUpstream {
            http,
            deployment,
            system,
            health_path,
            load_probe: None,
        }
    }

    /// Reads the server's load with `probe` (without one, [`Upstream::load`]
    /// is `None`).
    pub fn with_load_probe(mut self, probe: Option<LoadProbe>) -> OpenAiUpstream {
        self.load_probe = probe;
        self
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.deployment.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }
}

#[async_trait]
impl Upstream for OpenAiUpstream {
    fn system(&self) -> &str {
        self.system
    }

    async fn send(&self, endpoint: &str, body: &Map<String, Value>) -> Reply {
        let d = &self.deployment;
        let path = endpoint.strip_prefix("/v1").unwrap_or(endpoint);
        let req = self.http.post(d.url(path)).timeout(d.timeout).json(body);
        let response = match self.authorized(req).send().await {
            Ok(r) => r,
            Err(e) => {
                let message = if e.is_timeout() {
                    format!("upstream did not answer within {:?}", d.timeout)
                } else {
                    format!("upstream unreachable: {e}")
                };
                return Reply::NoAnswer { message };
            }
        };
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("x-request-id");
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
            .map(Duration::from_secs_f64);
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("upstream response was cut off: {e}"));
        Reply::Answered {
            status,
            request_id,
            retry_after,
            body,
        }
    }

    /// `GET /v1/batches?limit=1` answering OpenAI's list object.
    async fn has_batch_api(&self) -> bool {
        let d = &self.deployment;
        let req = self
            .http
            .get(d.url("/batches"))
            .query(&[("limit", "1")])
            .timeout(HEALTH_TIMEOUT.min(d.timeout));
        match self.authorized(req).send().await {
            Ok(r) if r.status().is_success() => {
                r.json::<Value>().await.is_ok_and(|v| v["object"] == "list")
            }
            _ => false,
        }
    }

    async fn load(&self) -> Option<ServerLoad> {
        let probe = self.load_probe?;
        let d = &self.deployment;
        let url = format!("{}{}", d.api_base, probe.path);
        let req = self.http.get(url).timeout(LOAD_TIMEOUT.min(d.timeout));
        let response = self.authorized(req).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let text = response.text().await.ok()?;
        (probe.parse)(&text, &d.served_model)
    }

    /// Any answer below 500 counts as up, so a server without the probed
    /// route (404) is up too.
    async fn health(&self) -> Result<(), String> {
        let d = &self.deployment;
        let url = format!("{}{}", d.api_base, self.health_path);
        let req = self.http.get(url).timeout(HEALTH_TIMEOUT.min(d.timeout));
        match self.authorized(req).send().await {
            Ok(r) if r.status().as_u16() < 500 => Ok(()),
            Ok(r) => Err(format!("GET {} answered {}", self.health_path, r.status())),
            Err(e) => Err(format!("unreachable: {e}")),
        }
    }
}
