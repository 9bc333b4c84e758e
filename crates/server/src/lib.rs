//! batchgate's HTTP layer: OpenAI's Files and Batch routes (at `/v1/...` and
//! `/...`), bearer-key auth, `x-request-id` on every response, and one rule
//! for failures: every error a client sees is the OpenAI envelope, and
//! nothing a client sends makes the server panic or answer 500.
//! Routes resolve which provider serves a call from the object's ID (or the
//! model named at upload) and call it through the `FileApi`/`BatchApi` traits.

mod admin;
mod app;
mod auth;
mod batches;
mod error;
mod extract;
mod files;
mod fleet;
mod guard;
mod health;
mod metrics;
mod registry;
mod serve;
mod spend;
pub mod telemetry;
mod upload;

pub use app::{router, AppState};
pub use auth::{key_hash, Auth};
pub use error::HttpError;
pub use metrics::handle as metrics_handle;
pub use registry::Providers;
pub use serve::{serve, shutdown_signal};
