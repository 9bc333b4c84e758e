//! Prometheus metrics: HTTP traffic here, batch and upstream metrics from
//! the engine (through the `metrics` facade), batch counts read from the
//! store at scrape time. `GET /metrics` needs no key, like LiteLLM's.

use std::sync::Arc;

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use batchgate_core::BatchStatus;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::AppState;

/// Histogram buckets (seconds): from sub-millisecond gateway work to
/// minute-long upstream calls.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// The process-wide recorder (installed once, shared by every router).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Middleware: requests by route template and status, and their latency.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("batchgate_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("batchgate_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn render(State(st): State<Arc<AppState>>) -> Response {
    match st.catalog.batches().batch_stats().await {
        Ok(stats) => {
            for s in BatchStatus::ALL {
                let n = stats
                    .by_status
                    .iter()
                    .find(|(x, _)| *x == s)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("batchgate_batches", "status" => s.as_str()).set(n as f64);
            }
            metrics::gauge!("batchgate_queue_depth_lines").set(stats.pending_lines as f64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read batch counts"),
    }
    let body = handle().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
