//! `ApiError` as an HTTP response.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use batchgate_core::ApiError;

/// An [`ApiError`] on its way out.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.0.envelope())).into_response();
        if let Some(secs) = self.0.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert("retry-after", v);
            }
        }
        response
    }
}

pub type HttpResult<T> = Result<T, HttpError>;

impl From<batchgate_store::StoreError> for HttpError {
    fn from(e: batchgate_store::StoreError) -> Self {
        HttpError(e.into())
    }
}
