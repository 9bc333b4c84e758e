//! Files routes other than upload: list, retrieve, content, delete.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use batchgate_core::{
    ApiError, DeletedFile, FileObject, FilePurpose, ListOrder, ListPage, ListQuery,
};
use batchgate_ids::Kind;
use futures::StreamExt;
use serde::Deserialize;

use crate::app::AppState;
use crate::error::HttpResult;
use crate::extract::{ApiPath, ApiQuery, Ctx};

#[derive(Debug, Default, Deserialize)]
pub struct FileListParams {
    after: Option<String>,
    limit: Option<String>,
    order: Option<String>,
    purpose: Option<String>,
    model: Option<String>,
}

/// Parses `limit` within `1..=max`, defaulting to `default`.
pub fn parse_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => s
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "limit must be an integer from 1 to {max}, got '{s}'."
                ))
                .with_param("limit")
            }),
    }
}

/// The model a request names: `x-litellm-model`, else `?model=`.
pub fn model_hint(headers: &HeaderMap, query: Option<String>) -> Option<String> {
    headers
        .get("x-litellm-model")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or(query)
}

pub fn parse_order(raw: Option<&str>) -> Result<ListOrder, ApiError> {
    match raw {
        None | Some("desc") => Ok(ListOrder::Desc),
        Some("asc") => Ok(ListOrder::Asc),
        Some(other) => Err(ApiError::invalid_request(format!(
            "order must be 'asc' or 'desc', got '{other}'."
        ))
        .with_param("order")),
    }
}

pub async fn list(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<FileListParams>,
) -> HttpResult<Json<ListPage<FileObject>>> {
    let purpose = match p.purpose.as_deref() {
        None => None,
        Some(raw) => Some(FilePurpose::parse(raw).ok_or_else(|| {
            ApiError::invalid_request(format!("Unknown purpose '{raw}'.")).with_param("purpose")
        })?),
    };
    let query = ListQuery {
        after: p.after.filter(|a| !a.is_empty()),
        limit: parse_limit(p.limit.as_deref(), 10_000, 10_000)?,
        order: parse_order(p.order.as_deref())?,
        purpose,
    };
    let model = model_hint(&headers, p.model);
    let page = match model {
        Some(name) => {
            let deployment = st.resolve_model(Some(&name))?;
            crate::guard::check_model(&ctx.caller, &deployment.model_name)?;
            let provider = st.providers.for_deployment(&deployment)?;
            provider.list_files(&ctx, &deployment, &query).await?
        }
        None => st.files.list(&ctx, None, &query).await?,
    };
    Ok(Json(page))
}

pub async fn retrieve(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    ApiPath(file_id): ApiPath,
) -> HttpResult<Json<FileObject>> {
    let file = st.catalog.route(Kind::File, &file_id)?;
    let provider = st.providers.for_deployment(&file.deployment)?;
    Ok(Json(provider.retrieve_file(&ctx, &file).await?))
}

pub async fn delete(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    ApiPath(file_id): ApiPath,
) -> HttpResult<Json<DeletedFile>> {
    let file = st.catalog.route(Kind::File, &file_id)?;
    let provider = st.providers.for_deployment(&file.deployment)?;
    Ok(Json(provider.delete_file(&ctx, &file).await?))
}

pub async fn content(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    ApiPath(file_id): ApiPath,
) -> HttpResult<Response> {
    let file = st.catalog.route(Kind::File, &file_id)?;
    let provider = st.providers.for_deployment(&file.deployment)?;
    let content = provider.file_content(&ctx, &file).await?;
    let counted = content.body.inspect(|chunk| {
        if let Ok(bytes) = chunk {
            metrics::counter!("batchgate_bytes_downloaded_total").increment(bytes.len() as u64);
        }
    });
    let mut response = Body::from_stream(counted).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(n) = content.bytes {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(response)
}
