//! batchgate's web console: plain ES modules and CSS, embedded in the
//! binary at compile time and served at `/ui`. There is no build step and
//! nothing is fetched from elsewhere, so the console works offline and is
//! exactly what the repository holds.
//!
//! The routes are public — they serve only static files. Every piece of
//! data the console shows comes from the gateway's own HTTP API, called by
//! the browser with the key the user signed in with, so a virtual key sees
//! in the console exactly what it sees through the API.

use std::sync::OnceLock;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Where the console is mounted.
pub const PREFIX: &str = "/ui";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Path under [`PREFIX`], e.g. `views/batch.js`.
    pub path: &'static str,
    pub mime: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $mime:expr),* $(,)?) => {
        &[$(Asset { path: $path, mime: $mime, body: include_bytes!(concat!("../assets/", $path)) }),*]
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of `assets/` (a test checks that none is missing).
pub const ASSETS: &[Asset] = assets![
    "index.html" => HTML,
    "style.css" => CSS,
    "icon.svg" => SVG,
    "app.js" => JS,
    "api.js" => JS,
    "ui.js" => JS,
    "format.js" => JS,
    "errors.js" => JS,
    "views/signin.js" => JS,
    "views/batches.js" => JS,
    "views/batch.js" => JS,
    "views/files.js" => JS,
    "views/spend.js" => JS,
    "views/fleet.js" => JS,
];

/// Only our own scripts and styles run, data comes from this origin only,
/// and the page cannot be framed: a key held in the page's session storage
/// is reachable by no other script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes: `/ui` (redirects to `/ui/`), `/ui/` (the page)
/// and `/ui/{file}` (its modules, styles and icon).
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(PREFIX, get(|| async { Redirect::permanent("/ui/") }))
        .route(
            "/ui/",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route("/ui/{*path}", get(asset))
}

async fn asset(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri
        .path()
        .strip_prefix(PREFIX)
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or_default();
    serve(path, &headers)
}

/// The asset at `path` with its validators and security headers; `304` if
/// the browser's copy is current, `404` for anything not embedded.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some((i, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Not found: the console has no such file.\n",
        )
            .into_response();
    };
    let etag = etags().get(i).cloned().unwrap_or_default();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    if !fresh {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every load: after an upgrade the browser must not mix
    // old and new modules.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A strong validator per asset (FNV-1a of its bytes), computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let hash = a.body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
                });
                format!("\"{hash:016x}\"")
            })
            .collect()
    })
}

/// Bytes a browser downloads on the first load of the console (every
/// embedded file: the page imports all its modules up front).
pub fn first_load_bytes() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

#[cfg(test)]
mod tests;
