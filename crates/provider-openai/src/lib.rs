//! The generic provider for OpenAI-compatible servers, and the `openai`
//! provider itself (LiteLLM's `openai/<model>` with an `api_base`: SGLang,
//! TGI, llama.cpp's server, Ollama, or OpenAI).
//!
//! A server that speaks OpenAI's HTTP API differs from another in little:
//! its name, how it reports itself in traces, where it answers a liveness
//! probe. That is a [`Flavor`]. Everything else is shared:
//! - files live in the gateway's store and batches run in its engine, line
//!   by line through the flavor's [`Upstream`], by default;
//! - where the server has its own Files and Batch API (`batch_api:
//!   upstream`, or `auto` after a probe) calls are forwarded and every ID is
//!   re-encoded (`forward/`).
//!
//! A provider crate for another server is a `Flavor` constant; the binary
//! registers it with one line.

mod forward;
mod provider;

use std::sync::Arc;

use batchgate_core::{Deployment, Provider, Upstream};
use batchgate_engine::{Catalog, Engine};
use batchgate_upstream_openai::{LoadProbe, OpenAiUpstream};

pub use provider::OpenAiCompatProvider;

/// What sets one OpenAI-compatible server apart.
#[derive(Debug, Clone, Copy)]
pub struct Flavor {
    /// The prefix of `litellm_params.model`, e.g. `hosted_vllm`.
    pub name: &'static str,
    /// `gen_ai.system` of its upstream spans.
    pub system: &'static str,
    /// The route probed for liveness, relative to `api_base`.
    pub health_path: &'static str,
    /// Where and how the server reports its load, if it does: adaptive
    /// concurrency reads it, and falls back to latency without it.
    pub load_probe: Option<LoadProbe>,
}

/// LiteLLM's `openai/` provider: any OpenAI-compatible `api_base`, probed
/// on `/v1/models`, which every such server answers.
pub const OPENAI: Flavor = Flavor {
    name: "openai",
    system: "openai",
    health_path: "/v1/models",
    load_probe: None,
};

impl Flavor {
    /// How the engine reaches deployment `d` of this flavor.
    pub fn upstream(&self, http: &reqwest::Client, d: &Arc<Deployment>) -> Arc<dyn Upstream> {
        let upstream = OpenAiUpstream::new(http.clone(), d.clone(), self.system, self.health_path);
        Arc::new(upstream.with_load_probe(self.load_probe))
    }

    /// The Files and Batch APIs of this flavor's deployments.
    pub fn provider(&self, catalog: &Catalog, engine: &Engine) -> Arc<dyn Provider> {
        Arc::new(OpenAiCompatProvider::new(
            *self,
            catalog.clone(),
            engine.clone(),
        ))
    }
}
