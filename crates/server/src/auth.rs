//! Authentication: the master key, or a virtual key looked up by its hash.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use batchgate_core::{ApiError, Caller};
use batchgate_engine::Accounts;
use futures::StreamExt;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::HttpError;

/// A resolved key is trusted this long before it is looked up again, so a
/// deleted key stops working within this time.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// How long the body of a refused request is read and discarded.
const LINGER: Duration = Duration::from_secs(30);

/// Who may call. With no master key every caller is the master (the binary
/// allows that only with `--insecure-no-auth`).
#[derive(Clone)]
pub struct Auth {
    master_key: Option<Arc<str>>,
    accounts: Option<Accounts>,
    cache: Cache<String, Caller>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("enabled", &self.master_key.is_some())
            .finish_non_exhaustive()
    }
}

/// The SHA-256 of a key, hex: the only form in which keys are stored.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Auth {
    /// The master key plus the virtual keys of `accounts`.
    pub fn new(master_key: String, accounts: Accounts) -> Auth {
        Auth {
            master_key: Some(master_key.into()),
            accounts: Some(accounts),
            cache: Cache::builder()
                .time_to_live(KEY_CACHE_TTL)
                .max_capacity(100_000)
                .build(),
        }
    }

    /// Only the master key.
    pub fn master_key(key: String) -> Auth {
        Auth {
            master_key: Some(key.into()),
            accounts: None,
            cache: Cache::new(1),
        }
    }

    pub fn disabled() -> Auth {
        Auth {
            master_key: None,
            accounts: None,
            cache: Cache::new(1),
        }
    }

    /// Forgets cached virtual keys (after an update or delete).
    pub fn invalidate(&self) {
        self.cache.invalidate_all();
    }

    /// The caller a presented key stands for, if any.
    pub async fn authenticate(&self, presented: Option<&str>) -> Result<Caller, ApiError> {
        let Some(master) = &self.master_key else {
            return Ok(Caller::master());
        };
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            return Err(ApiError::unauthorized(
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
            ));
        };
        if bool::from(presented.as_bytes().ct_eq(master.as_bytes())) {
            return Ok(Caller::master());
        }
        let wrong = || ApiError::unauthorized("Incorrect API key provided.");
        let Some(accounts) = &self.accounts else {
            return Err(wrong());
        };
        let hash = key_hash(presented);
        if let Some(caller) = self.cache.get(&hash).await {
            return Ok(caller);
        }
        let key = accounts
            .keys()
            .key_by_hash(&hash)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(wrong)?;
        if key.blocked {
            // Not cached: an unblock then takes effect at once here.
            return Err(ApiError::unauthorized(
                "This API key is blocked. An admin can unblock it with POST /key/unblock.",
            )
            .with_code("key_blocked"));
        }
        let caller = Caller {
            key_id: Some(key.key_id),
            team_id: key.team_id,
            is_master: false,
            models: key.models,
        };
        self.cache.insert(hash, caller.clone()).await;
        Ok(caller)
    }
}

/// The key from `Authorization: Bearer …` or `x-api-key`.
fn presented_key(req: &Request) -> Option<String> {
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
        return Some(token.trim().to_string());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// Middleware: authenticate, then hand the caller to handlers.
pub async fn require_key(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let presented = presented_key(&req);
    match auth.authenticate(presented.as_deref()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            let response = HttpError(e).into_response();
            // A client still sending a body (an upload with a wrong key)
            // would otherwise see the connection reset instead of the 401.
            // With `Expect: 100-continue` (curl) nothing was sent yet.
            if !req.headers().contains_key(http::header::EXPECT) {
                let mut body = req.into_body().into_data_stream();
                let drain = async { while let Some(Ok(_)) = body.next().await {} };
                let _ = tokio::time::timeout(LINGER, drain).await;
            }
            response
        }
    }
}
