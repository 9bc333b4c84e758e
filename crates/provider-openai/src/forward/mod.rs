//! Forwarding: for deployments whose upstream has its own Files and Batch
//! API (a newer vLLM, another gateway, OpenAI), calls go to the upstream and
//! every ID in every answer is re-encoded as a gateway ID that routes back.
//! The gateway keeps a catalog row per forwarded object, so listings and
//! ownership work the same as for gateway-run objects.

mod batches;
mod files;
mod ids;
mod rewrite;

use batchgate_core::{ApiError, Deployment, ErrorBody, RequestCtx};
use batchgate_engine::Catalog;
use batchgate_store::{Owner, StoreError};
use serde_json::Value;

/// Talks to upstream Files/Batch APIs.
#[derive(Debug, Clone)]
pub struct Forwarder {
    catalog: Catalog,
    http: reqwest::Client,
}

impl Forwarder {
    pub fn new(catalog: Catalog, http: reqwest::Client) -> Forwarder {
        Forwarder { catalog, http }
    }

    fn request(
        &self,
        method: reqwest::Method,
        deployment: &Deployment,
        path: &str,
        ctx: &RequestCtx,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, deployment.url(path))
            .timeout(deployment.timeout)
            .header("x-request-id", &ctx.request_id);
        if let Some(key) = &deployment.api_key {
            req = req.bearer_auth(key);
        }
        req
    }

    /// Sends and reads a JSON answer; upstream errors become OpenAI-shaped
    /// errors (a 404 names the gateway's ID, never the upstream's).
    async fn json(
        &self,
        req: reqwest::RequestBuilder,
        object: &str,
        public_id: &str,
    ) -> Result<Value, ApiError> {
        let response = req.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|e| {
            ApiError::bad_gateway(format!(
                "The upstream answered something that is not JSON: {e}"
            ))
        })?;
        check(status, body, object, public_id)
    }

    fn not_found(object: &str, public_id: &str) -> ApiError {
        ApiError::not_found(object, public_id)
    }

    fn owner(ctx: &RequestCtx) -> Owner {
        Owner::of(&ctx.caller)
    }
}

fn unreachable(e: reqwest::Error) -> ApiError {
    tracing::warn!(error = %e, "upstream unreachable");
    ApiError::bad_gateway(format!("The upstream could not be reached: {e}"))
}

fn check(status: u16, body: Value, object: &str, public_id: &str) -> Result<Value, ApiError> {
    match status {
        200..=299 => Ok(body),
        404 => Err(Forwarder::not_found(object, public_id)),
        400..=499 => {
            let e = ErrorBody::from_upstream(&body).unwrap_or_else(|| ErrorBody {
                message: "The upstream rejected the request.".into(),
                kind: "invalid_request_error".into(),
                param: None,
                code: None,
            });
            Err(ApiError {
                status,
                body: e,
                retry_after: None,
            })
        }
        _ => Err(ApiError::bad_gateway(format!(
            "The upstream answered {status}."
        ))),
    }
}

fn store_err(e: StoreError) -> ApiError {
    e.into()
}
