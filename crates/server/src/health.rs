//! Health: `/health/liveliness` (the process answers), `/health/readiness`
//! (the store answers), `/health` (each deployment answers, reported as
//! LiteLLM reports it).

use std::sync::Arc;

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use batchgate_core::{ApiError, Deployment};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::error::HttpError;
use crate::extract::Ctx;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn liveliness() -> &'static str {
    "I'm alive!"
}

pub async fn readiness(State(st): State<Arc<AppState>>) -> Response {
    match st.gw.store.ping().await {
        Ok(()) => Json(json!({"status": "healthy", "db": "connected"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            HttpError(ApiError::unavailable("The store is unreachable.")).into_response()
        }
    }
}

/// Probes every deployment's `GET /health` (vLLM's) concurrently. One the
/// batch engine has paused for an outage is unhealthy without a probe: the
/// engine's own probe will resume it.
pub async fn deployments(State(st): State<Arc<AppState>>, Ctx(_): Ctx) -> Json<Value> {
    let http = reqwest::Client::new();
    let paused = st.batches.paused_deployments();
    let now = st.gw.now();
    let probes = st.gw.router.deployments().iter().map(|d| {
        let since = paused.iter().find(|p| p.id == d.id).map(|p| p.since);
        let http = &http;
        async move {
            match since {
                Some(since) => Err(paused_reason(since, now)),
                None => probe(http, d).await,
            }
        }
    });
    let results = futures::future::join_all(probes).await;
    let (mut healthy, mut unhealthy) = (Vec::new(), Vec::new());
    for (d, outcome) in st.gw.router.deployments().iter().zip(results) {
        let mut entry = json!({
            "model": d.model_name,
            "api_base": d.api_base,
            "litellm_params": {"model": format!("{}/{}", d.provider, d.served_model), "api_base": d.api_base},
        });
        match outcome {
            Ok(()) => healthy.push(entry),
            Err(e) => {
                entry["error"] = json!(e);
                unhealthy.push(entry);
            }
        }
    }
    Json(json!({
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
    }))
}

fn paused_reason(since: i64, now: i64) -> String {
    let ago = now.saturating_sub(since).max(0);
    format!("paused: upstream unreachable since {since} (unix time, {ago} s ago); batches resume when it answers")
}

async fn probe(http: &reqwest::Client, d: &Deployment) -> Result<(), String> {
    let mut req = http
        .get(format!("{}/health", d.api_base))
        .timeout(PROBE_TIMEOUT);
    if let Some(key) = &d.api_key {
        req = req.bearer_auth(key);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("GET /health answered {}", r.status())),
        Err(e) => Err(format!("unreachable: {e}")),
    }
}
