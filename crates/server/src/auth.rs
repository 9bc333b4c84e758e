//! Bearer-key authentication.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use batchgate_core::{ApiError, Caller};
use subtle::ConstantTimeEq;

use crate::error::HttpError;

/// Who may call. With no master key every caller is the master (the binary
/// allows that only with `--insecure-no-auth`).
#[derive(Debug, Clone)]
pub struct Auth {
    master_key: Option<String>,
}

impl Auth {
    pub fn master_key(key: String) -> Auth {
        Auth {
            master_key: Some(key),
        }
    }

    pub fn disabled() -> Auth {
        Auth { master_key: None }
    }

    /// The caller a presented key stands for, if any.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Caller, ApiError> {
        let Some(master) = &self.master_key else {
            return Ok(Caller::master());
        };
        let Some(presented) = presented else {
            return Err(ApiError::unauthorized(
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
            ));
        };
        if bool::from(presented.as_bytes().ct_eq(master.as_bytes())) {
            Ok(Caller::master())
        } else {
            Err(ApiError::unauthorized("Incorrect API key provided."))
        }
    }
}

/// The key from `Authorization: Bearer …` or `x-api-key`.
fn presented_key(req: &Request) -> Option<&str> {
    let headers = req.headers();
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v);
        return Some(token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Middleware: authenticate, then hand the caller to handlers.
pub async fn require_key(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    match auth.authenticate(presented_key(&req)) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => HttpError(e).into_response(),
    }
}
