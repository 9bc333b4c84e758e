//! The `hosted_vllm` provider: OpenAI's Files and Batch APIs for vLLM
//! deployments. Plain `vllm serve` has neither, so by default files live in
//! the gateway's store and batches run in the gateway's engine, line by line
//! against the deployment's `/v1/chat/completions` (and friends). Where an
//! upstream has its own batch API (`litellm_params.batch_api: upstream`, or
//! `auto` after a probe), calls are forwarded and every ID re-encoded.
//!
//! All of that is the generic OpenAI-compatible provider
//! ([`batchgate_provider_openai`]); what is vLLM's own is its [`FLAVOR`]:
//! the name, the `gen_ai.system` it reports, its `/health` route, and its
//! Prometheus gauges at `/metrics` (requests running and waiting, KV-cache
//! use), which size the engine's adaptive concurrency ([`metrics`]).
//!
//! [`Embedded`] runs it as a library straight against a vLLM server — the
//! Rust counterpart of the seed's Python SDK example.

mod embedded;
pub mod metrics;
mod upstream;

use batchgate_engine::Assembly;
use batchgate_provider_openai::{Flavor, OpenAiCompatProvider};

pub use embedded::Embedded;
pub use upstream::{assemble, upstream};

/// vLLM: `hosted_vllm/<served model>`, probed on vLLM's `GET /health`,
/// its load read from `GET /metrics`.
pub const FLAVOR: Flavor = Flavor {
    name: "hosted_vllm",
    system: "vllm",
    health_path: "/health",
    load_probe: Some(metrics::LOAD_PROBE),
};

/// The provider name, as written in `litellm_params.model`.
pub const NAME: &str = FLAVOR.name;

/// The `hosted_vllm` provider over `gateway`'s catalog and engine.
pub fn provider(gateway: &Assembly) -> OpenAiCompatProvider {
    OpenAiCompatProvider::new(FLAVOR, gateway.catalog().clone(), gateway.engine().clone())
}
