//! `GET /v1/models` and `GET /v1/models/{model}`: the models a key may use,
//! in OpenAI's Models API shape (what `client.models.list()` reads), each
//! with batchgate's `batch_endpoints`: the endpoints a batch of it may use.
//! This is how a client learns that a deployment runs `/v1/responses` but
//! not `/v1/moderations` before it uploads anything.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use batchgate_core::{ApiError, Deployment};
use serde::Serialize;

use crate::app::AppState;
use crate::error::HttpResult;
use crate::extract::{ApiPath, Ctx};

/// One model as OpenAI's Models API returns it, plus `batch_endpoints`.
#[derive(Debug, Serialize)]
pub struct Model {
    pub id: String,
    pub object: &'static str,
    /// OpenAI's field; a configured model has no creation date, so 0.
    pub created: i64,
    /// The provider that serves it, e.g. `hosted_vllm`.
    pub owned_by: String,
    /// The batch endpoints every replica of the model serves.
    pub batch_endpoints: Vec<String>,
}

/// `{"object":"list","data":[Model]}`.
#[derive(Debug, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<Model>,
}

/// The models the caller may use, in configuration order.
pub async fn list(State(st): State<Arc<AppState>>, Ctx(ctx): Ctx) -> HttpResult<Json<ModelList>> {
    let router = st.catalog.ids().router();
    let data = router
        .model_names()
        .iter()
        .filter(|name| ctx.caller.may_use(name))
        .filter_map(|name| router.group(name).map(|group| model(name, group)))
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

/// One model, if it is configured and the caller may use it.
pub async fn retrieve(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    ApiPath(name): ApiPath,
) -> HttpResult<Json<Model>> {
    let group = st
        .catalog
        .ids()
        .router()
        .group(&name)
        .filter(|_| ctx.caller.may_use(&name))
        .ok_or_else(|| {
            ApiError::new(
                404,
                "invalid_request_error",
                format!("The model '{name}' does not exist."),
            )
            .with_param("model")
            .with_code("model_not_found")
        })?;
    Ok(Json(model(&name, group)))
}

/// A model group as one [`Model`]. Its replicas' endpoints are intersected:
/// an input file lands on one replica, so only what all of them serve is
/// sure to be accepted.
fn model(name: &str, group: &[Arc<Deployment>]) -> Model {
    let first = group.first();
    let batch_endpoints = first
        .map(|d| d.endpoints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| group.iter().all(|d| d.serves(e)))
        .collect();
    Model {
        id: name.to_string(),
        object: "model",
        created: 0,
        owned_by: first.map(|d| d.provider.clone()).unwrap_or_default(),
        batch_endpoints,
    }
}
