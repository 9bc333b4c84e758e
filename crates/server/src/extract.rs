//! Extractors whose rejections are OpenAI-shaped 400s.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use batchgate_core::{ApiError, Caller, RequestCtx};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::HttpError;

/// The largest JSON body (batch creation, admin routes): 2 MiB.
pub const MAX_JSON_BYTES: usize = 2 * 1024 * 1024;
/// How much of an over-large body is read and discarded before the 413, and
/// for how long: a client that writes its whole body before reading (curl,
/// requests, httpx) then reads the answer instead of a reset connection.
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// A JSON body of at most [`MAX_JSON_BYTES`]; malformed JSON or wrong types
/// answer 400 with the reason, a larger body 413.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(req, MAX_JSON_BYTES).await?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| HttpError(ApiError::invalid_request(format!("Invalid JSON body: {e}"))))
    }
}

/// Like [`ApiJson`], but an empty body (or one of whitespace only) is
/// `T::default()`: for routes whose every parameter is optional.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(req, MAX_JSON_BYTES).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalJson)
            .map_err(|e| HttpError(ApiError::invalid_request(format!("Invalid JSON body: {e}"))))
    }
}

/// The body, if it is at most `limit` bytes; else a 413 once the rest has
/// been drained (see [`DRAIN_BYTES`]).
async fn read_limited(req: Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let headers = req.headers();
    // With `Expect: 100-continue` the client waits for our go-ahead, which
    // is only sent if the body is read: answering unread sends nothing.
    let waits_for_continue = headers.contains_key(header::EXPECT);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = req.into_body().into_data_stream();
    let too_large = || {
        ApiError::new(
            413,
            "invalid_request_error",
            format!("The request body is larger than the limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    };
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if declared.is_some_and(|n| n > limit_u64) {
        if !waits_for_continue {
            drain(&mut body).await;
        }
        return Err(too_large());
    }
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid_request(format!("Could not read the request body: {e}"))
        })?;
        if buf.len().saturating_add(chunk.len()) > limit {
            drain(&mut body).await;
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Reads and discards up to [`DRAIN_BYTES`] of what is left, for at most
/// [`DRAIN_TIME`].
async fn drain(body: &mut axum::body::BodyDataStream) {
    let discard = async {
        let mut seen: u64 = 0;
        while let Some(Ok(chunk)) = body.next().await {
            seen = seen.saturating_add(chunk.len() as u64);
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
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
