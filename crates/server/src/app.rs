//! The router and its shared state (serving it is [`crate::serve`]).

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use batchgate_core::{ApiError, Deployment};
use batchgate_engine::{Accounts, Assembly, Catalog, Engine, LocalFiles};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::admin::{self, AdminState};
use crate::auth::{require_key, Auth};
use crate::error::HttpError;
use crate::registry::Providers;
use crate::{batches, files, models, spend, upload};

/// Everything handlers share: the providers, which serve every call about
/// one model's objects, and the gateway's own handles for what spans
/// models (routing IDs, listings without a model, keys and budgets, health).
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) providers: Providers,
    pub(crate) catalog: Catalog,
    pub(crate) accounts: Accounts,
    /// Files of every model, for listings that name none.
    pub(crate) files: LocalFiles,
    /// Batches of every model, for listings that name none, and the
    /// deployments' pause state.
    pub(crate) batches: Engine,
    /// Where uploads whose file part precedes the form are spooled.
    pub(crate) spool_dir: PathBuf,
}

impl AppState {
    pub fn new(gateway: &Assembly, providers: Providers, spool_dir: PathBuf) -> AppState {
        AppState {
            providers,
            catalog: gateway.catalog().clone(),
            accounts: gateway.accounts().clone(),
            files: gateway.files().clone(),
            batches: gateway.engine().clone(),
            spool_dir,
        }
    }

    /// The model names clients may use.
    pub fn model_names(&self) -> &[String] {
        self.catalog.ids().router().model_names()
    }

    /// The deployment an upload goes to: the named model (one replica of it,
    /// round-robin), or the only configured model when none is named.
    pub fn resolve_model(&self, model: Option<&str>) -> Result<Arc<Deployment>, ApiError> {
        let router = self.catalog.ids().router();
        let configured = || router.model_names().join(", ");
        match model.or(router.sole_model()) {
            Some(name) => router.pick(name).ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "Unknown model '{name}'. Configured models: {}.",
                    configured()
                ))
                .with_param("model")
                .with_code("model_not_found")
            }),
            None => Err(ApiError::invalid_request(format!(
                "No model given: send the 'x-litellm-model' header (or a 'model' form field or ?model=). Configured models: {}.",
                configured()
            ))
            .with_param("model")),
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState, auth: Auth) -> Router {
    crate::metrics::handle();
    let api = Router::new()
        .route(
            "/files",
            post(upload::upload)
                .layer(DefaultBodyLimit::disable())
                .get(files::list),
        )
        .route(
            "/files/{file_id}",
            get(files::retrieve).delete(files::delete),
        )
        .route("/files/{file_id}/content", get(files::content))
        .route("/batches", post(batches::create).get(batches::list))
        .route("/batches/{batch_id}", get(batches::retrieve))
        .route("/batches/{batch_id}/cancel", post(batches::cancel))
        .route("/batches/{batch_id}/retry", post(batches::retry))
        .route("/models", get(models::list))
        // Model names may hold slashes (`meta-llama/Llama-2-7b-chat-hf`).
        .route("/models/{*model}", get(models::retrieve));
    let management = Router::new()
        .route("/key/generate", post(admin::generate))
        .route("/key/update", post(admin::update))
        .route("/key/delete", post(admin::delete))
        .route("/key/block", post(admin::block))
        .route("/key/unblock", post(admin::unblock))
        .route("/key/info", get(admin::info))
        .route("/team/new", post(admin::team_upsert))
        .route("/team/update", post(admin::team_upsert))
        .route("/team/info", get(admin::team_info))
        .route("/spend/logs", get(spend::logs))
        .route("/global/spend/report", get(spend::report))
        .with_state(AdminState {
            accounts: state.accounts.clone(),
            auth: auth.clone(),
        });
    let authed = Router::new()
        .nest("/v1", api.clone())
        .merge(api)
        .route("/health", get(crate::health::deployments))
        .route("/fleet", get(crate::fleet::fleet))
        .merge(management)
        .route_layer(axum::middleware::from_fn_with_state(auth, require_key));
    Router::new()
        .merge(authed)
        // The console's files are public; its data comes from the routes
        // above, called with the user's own key.
        .merge(batchgate_console::router())
        .route("/health/liveliness", get(crate::health::liveliness))
        .route("/health/readiness", get(crate::health::readiness))
        .route("/metrics", get(crate::metrics::render))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::new(state))
        .route_layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(crate::telemetry::HttpMakeSpan)
                        .on_response(crate::telemetry::HttpOnResponse),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(panic_response)),
        )
}

async fn not_found(uri: axum::http::Uri) -> HttpError {
    HttpError(
        ApiError::new(
            404,
            "invalid_request_error",
            format!("Unknown route: {}", uri.path()),
        )
        .with_code("unknown_url"),
    )
}

async fn method_not_allowed() -> HttpError {
    HttpError(ApiError::method_not_allowed())
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    let mut r = HttpError(ApiError::internal("The gateway hit an internal error.")).into_response();
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}
