//! `GET /fleet` (batchgate extension, any key): what the console's Fleet
//! view shows beside `/health` — each deployment's configuration, lines in
//! flight, concurrency (this instance's limit, its share of
//! `max_parallel_requests`, queue estimate, throughput) and pause state,
//! batch counts by status, the instance answering, and the instances (on a
//! shared database every live one) with the batches they hold, the models
//! they work on and the age of their last heartbeat.

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
    let concurrency = st.batches.concurrency();
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
            let c = concurrency
                .iter()
                .find(|(id, _)| *id == d.id)
                .map(|(_, c)| {
                    json!({
                        "limit": c.limit,
                        "ceiling": c.ceiling,
                        "adaptive": c.adaptive,
                        "queue_estimate": c.queue_estimate,
                        "requests_per_second": c.requests_per_second,
                    })
                });
            json!({
                "id": d.id,
                "model": d.model_name,
                "provider": d.provider,
                "served_model": d.served_model,
                "api_base": d.api_base,
                "batch_api": d.batch_api,
                "max_parallel_requests": d.max_parallel_requests,
                "in_flight": busy,
                "concurrency": c,
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

/// This instance, every instance holding a lease, and (on a shared
/// database) every live instance: the batches each
/// holds, the models it works on, and its last heartbeat. Leases are
/// renewed every third of `lease_seconds`; one not renewed for longer
/// lapses and another instance takes its batch over.
async fn instances(st: &AppState) -> Result<Vec<Value>, crate::error::HttpError> {
    let now = st.catalog.now();
    let reach = i64::try_from(st.batches.lease_seconds()).unwrap_or(i64::MAX);
    let me = st.batches.instance();
    let holders = st.catalog.batches().lease_holders(now).await?;
    let present = st.batches.fleet_presence().await?;
    let mut names: Vec<&str> = std::iter::once(me)
        .chain(holders.iter().map(|h| h.owner.as_str()))
        .chain(present.iter().map(|p| p.instance.as_str()))
        .collect();
    // This one first, then by name.
    names[1..].sort_unstable();
    names.dedup();
    Ok(names
        .into_iter()
        .enumerate()
        .filter(|(i, n)| *i == 0 || *n != me)
        .map(|(_, name)| {
            let held = holders.iter().find(|h| h.owner == name);
            let models: Vec<&str> = present
                .iter()
                .filter(|p| p.instance == name && p.model != batchgate_store::ALIVE)
                .map(|p| p.model.as_str())
                .collect();
            let beat = present
                .iter()
                .filter(|p| p.instance == name)
                .map(|p| p.heartbeat_at)
                .chain(held.map(|h| h.lease_until.saturating_sub(reach)))
                .max();
            let this = name == me;
            json!({
                "id": name,
                "this": this,
                "batches": held.map_or(0, |h| h.batches),
                "models": models,
                // This process answers, so its heartbeat is now.
                "heartbeat_at": if this { Some(now) } else { beat },
                "lease_until": held.map(|h| h.lease_until),
            })
        })
        .collect())
}
