//! Extractors whose rejections are OpenAI-shaped 400s.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use batchgate_core::{ApiError, Caller, RequestCtx};
use serde::de::DeserializeOwned;

use crate::error::HttpError;

/// A JSON body; malformed JSON or wrong types answer 400 with the reason.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::invalid_request(format!("Could not read the request body: {e}"))
            })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| HttpError(ApiError::invalid_request(format!("Invalid JSON body: {e}"))))
    }
}

/// A query string; unparsable values answer 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(v) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::invalid_request(format!("Invalid query parameters: {}", e.body_text()))
            })?;
        Ok(ApiQuery(v))
    }
}

/// The request's context: its `x-request-id` and the authenticated caller.
#[derive(Debug, Clone)]
pub struct Ctx(pub RequestCtx);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("Missing API key."))?;
        Ok(Ctx(RequestCtx { request_id, caller }))
    }
}

/// One path segment (an object ID); a malformed one answers 400.
#[derive(Debug)]
pub struct ApiPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiPath {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(v) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid_request(format!("Invalid path: {}", e.body_text())))?;
        Ok(ApiPath(v))
    }
}
