//! `GET /fleet` (batchgate extension, any key): what the console's Fleet
//! view shows beside `/health` — each deployment's configuration, lines in
//! flight and pause state, batch counts by status, and the instance
//! answering, and the instances holding batch leases (on a shared database,
//! every instance running something) with the age of their last heartbeat.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::error::HttpResult;
use crate::extract::Ctx;

pub async fn fleet(State(st): State<Arc<AppState>>, Ctx(_): Ctx) -> HttpResult<Json<Value>> {
    let paused = st.batches.paused_deployments();
    let in_flight = st.batches.in_flight();
    let deployments: Vec<Value> = st
        .catalog
        .ids()
        .router()
        .deployments()
        .iter()
        .map(|d| {
            let since = paused.iter().find(|p| p.id == d.id).map(|p| p.since);
            let busy = in_flight
                .iter()
                .find(|(id, _)| *id == d.id)
                .map_or(0, |(_, n)| *n);
            json!({
                "id": d.id,
                "model": d.model_name,
                "provider": d.provider,
                "served_model": d.served_model,
                "api_base": d.api_base,
                "batch_api": d.batch_api,
                "max_parallel_requests": d.max_parallel_requests,
                "in_flight": busy,
                "paused_since": since,
            })
        })
        .collect();
    let stats = st.catalog.batches().batch_stats().await?;
    let by_status: serde_json::Map<String, Value> = stats
        .by_status
        .iter()
        .map(|(s, n)| (s.as_str().to_string(), json!(n)))
        .collect();
    Ok(Json(json!({
        "instance": st.batches.instance(),
        "now": st.catalog.now(),
        "deployments": deployments,
        "batches": by_status,
        "queue_depth_lines": stats.pending_lines,
        "instances": instances(&st).await?,
    })))
}

/// This instance and every instance holding a lease: the batches each
/// holds and when it last renewed one (its heartbeat). Leases are renewed
/// every third of `lease_seconds`; one not renewed for longer lapses and
/// another instance takes its batch over.
async fn instances(st: &AppState) -> Result<Vec<Value>, crate::error::HttpError> {
    let now = st.catalog.now();
    let reach = i64::try_from(st.batches.lease_seconds()).unwrap_or(i64::MAX);
    let me = st.batches.instance();
    let mut holders = st.catalog.batches().lease_holders(now).await?;
    if !holders.iter().any(|h| h.owner == me) {
        holders.insert(
            0,
            batchgate_store::LeaseHolder {
                owner: me.to_string(),
                batches: 0,
                lease_until: now.saturating_add(reach),
            },
        );
    }
    Ok(holders
        .into_iter()
        .map(|h| {
            let this = h.owner == me;
            // This process answers, so its heartbeat is now whatever it holds.
            let heartbeat = if this {
                now
            } else {
                h.lease_until.saturating_sub(reach)
            };
            json!({
                "id": h.owner,
                "this": this,
                "batches": h.batches,
                "heartbeat_at": heartbeat,
                "lease_until": (h.batches > 0).then_some(h.lease_until),
            })
        })
        .collect())
}
