//! Health: `/health/liveliness` (the process answers), `/health/readiness`
//! (the store answers), `/health` (each deployment answers, reported as
//! LiteLLM reports it).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use batchgate_core::ApiError;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::error::HttpError;
use crate::extract::Ctx;

pub async fn liveliness() -> &'static str {
    "I'm alive!"
}

/// Ready when the store answers and the data directory takes writes: a
/// full disk makes the gateway refuse uploads and stall batches, so it is
/// reported here (code `storage_full`) for the load balancer and operator.
pub async fn readiness(State(st): State<Arc<AppState>>) -> Response {
    if let Err(e) = st.catalog.ping().await {
        tracing::warn!(error = %e, "readiness: store unreachable");
        return HttpError(ApiError::unavailable("The store is unreachable.")).into_response();
    }
    match probe_write(&st.spool_dir).await {
        Ok(()) => {
            Json(json!({"status": "healthy", "db": "connected", "storage": "ok"})).into_response()
        }
        Err(e) if batchgate_store::is_full_io(&e) => {
            tracing::warn!(dir = %st.spool_dir.display(), "readiness: storage full");
            HttpError(
                ApiError::unavailable(
                    "The gateway's storage is full: uploads are refused and batches are paused until space is freed.",
                )
                .with_code("storage_full"),
            )
            .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, dir = %st.spool_dir.display(), "readiness: storage not writable");
            HttpError(ApiError::unavailable(
                "The gateway's storage is not writable.",
            ))
            .into_response()
        }
    }
}

/// Writes and removes a small file where uploads are spooled (the data
/// directory's file system). Plain blocking I/O on the blocking pool: an
/// async file reports a failed write only on a later call.
async fn probe_write(dir: &std::path::Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    let probe = move || {
        use std::io::Write;
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!(".ready-{}", std::process::id()));
        let result = std::fs::File::create(&path).and_then(|mut f| {
            f.write_all(&[0u8; 16 * 1024])?;
            f.sync_all()
        });
        let _ = std::fs::remove_file(&path);
        result
    };
    tokio::task::spawn_blocking(probe)
        .await
        .map_err(std::io::Error::other)?
}

/// Asks every deployment's upstream whether it is healthy (vLLM: its
/// `GET /health`), concurrently. One the batch engine has paused for an
/// outage is unhealthy without a probe: the engine's own probe will resume
/// it.
pub async fn deployments(State(st): State<Arc<AppState>>, Ctx(_): Ctx) -> Json<Value> {
    let paused = st.batches.paused_deployments();
    let now = st.catalog.now();
    let probes = st.catalog.ids().router().deployments().iter().map(|d| {
        let since = paused.iter().find(|p| p.id == d.id).map(|p| p.since);
        let engine = &st.batches;
        async move {
            match since {
                Some(since) => Err(paused_reason(since, now)),
                None => engine
                    .upstream_health(&d.id)
                    .await
                    .unwrap_or_else(|| Err("no upstream is configured".into())),
            }
        }
    });
    let results = futures::future::join_all(probes).await;
    let (mut healthy, mut unhealthy) = (Vec::new(), Vec::new());
    for (d, outcome) in st.catalog.ids().router().deployments().iter().zip(results) {
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
