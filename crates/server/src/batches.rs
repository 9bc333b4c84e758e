//! Batch routes: create, retrieve, cancel, list.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use batchgate_core::{ApiError, Batch, CreateBatchRequest, ListOrder, ListPage, ListQuery};
use batchgate_ids::Kind;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::error::HttpResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Ctx, OptionalJson};
use crate::files::parse_limit;

#[derive(Debug, Default, Deserialize)]
pub struct BatchListParams {
    after: Option<String>,
    limit: Option<String>,
    model: Option<String>,
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    ApiJson(req): ApiJson<CreateBatchRequest>,
) -> HttpResult<Json<Batch>> {
    // The input file's ID says where the batch runs; a forged or unknown
    // one is a bad parameter here, not a missing route.
    let input = st
        .catalog
        .route(Kind::File, &req.input_file_id)
        .map_err(|_| {
            ApiError::invalid_request(format!("No such file: '{}'.", req.input_file_id))
                .with_param("input_file_id")
                .with_code("file_not_found")
        })?;
    crate::guard::check_model(&ctx.caller, &input.deployment.model_name)?;
    st.accounts.check_budget(&ctx.caller).await?;
    let provider = st.providers.for_deployment(&input.deployment)?;
    Ok(Json(provider.create_batch(&ctx, &input, req).await?))
}

/// The batch, with its cost so far also in `x-litellm-response-cost` (as
/// LiteLLM reports it). Reading a batch never changes spend.
pub async fn retrieve(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    ApiPath(id): ApiPath,
) -> HttpResult<Response> {
    let batch = st.catalog.route(Kind::Batch, &id)?;
    let provider = st.providers.for_deployment(&batch.deployment)?;
    let batch = provider.retrieve_batch(&ctx, &batch).await?;
    let cost = batch
        .cost
        .as_ref()
        .and_then(|c| HeaderValue::from_str(&c.total).ok());
    let mut response = Json(batch).into_response();
    if let Some(cost) = cost {
        response
            .headers_mut()
            .insert("x-litellm-response-cost", cost);
    }
    Ok(response)
}

pub async fn cancel(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    ApiPath(id): ApiPath,
) -> HttpResult<Json<Batch>> {
    let batch = st.catalog.route(Kind::Batch, &id)?;
    let provider = st.providers.for_deployment(&batch.deployment)?;
    Ok(Json(provider.cancel_batch(&ctx, &batch).await?))
}

/// The body of `POST /v1/batches/{id}/retry` (optional: an empty body is
/// `{}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Retry every failed line, not only those that failed for a reason
    /// other than the request itself.
    #[serde(default)]
    all: bool,
}

/// batchgate's extension: a new batch over an ended batch's failed lines.
pub async fn retry(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    ApiPath(id): ApiPath,
    OptionalJson(req): OptionalJson<RetryRequest>,
) -> HttpResult<Json<Batch>> {
    let batch = st.catalog.route(Kind::Batch, &id)?;
    let provider = st.providers.for_deployment(&batch.deployment)?;
    Ok(Json(provider.retry_batch(&ctx, &batch, req.all).await?))
}

/// A listed batch. Listings of the catalog add batchgate's `owner`
/// extension: the key and team the batch belongs to (both null for the
/// master key's), so an operator can tell whose it is.
#[derive(Debug, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    batch: Batch,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<ListedOwner>,
}

#[derive(Debug, Serialize)]
pub struct ListedOwner {
    key_id: Option<String>,
    team_id: Option<String>,
}

/// Every batch the caller may see, newest first, whatever route or model
/// created it.
pub async fn list(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<BatchListParams>,
) -> HttpResult<Json<ListPage<Listed>>> {
    let model = crate::files::model_hint(&headers, p.model);
    let query = ListQuery {
        after: p.after.filter(|a| !a.is_empty()),
        limit: parse_limit(p.limit.as_deref(), 20, 100)?,
        order: ListOrder::Desc,
        purpose: None,
    };
    // Naming a model asks that model's provider (an upstream-mode deployment
    // lists the upstream's batches); otherwise the gateway's catalog answers.
    let (page, owners) = match model {
        Some(name) => {
            let deployment = st.resolve_model(Some(&name))?;
            crate::guard::check_model(&ctx.caller, &deployment.model_name)?;
            let provider = st.providers.for_deployment(&deployment)?;
            (
                provider.list_batches(&ctx, &deployment, &query).await?,
                vec![],
            )
        }
        None => st.batches.list_owned(&ctx, None, &query).await?,
    };
    let mut owners = owners.into_iter();
    let data = page
        .data
        .into_iter()
        .map(|batch| Listed {
            batch,
            owner: owners.next().map(|o| ListedOwner {
                key_id: o.key_id,
                team_id: o.team_id,
            }),
        })
        .collect();
    Ok(Json(ListPage {
        object: page.object,
        data,
        first_id: page.first_id,
        last_id: page.last_id,
        has_more: page.has_more,
    }))
}
