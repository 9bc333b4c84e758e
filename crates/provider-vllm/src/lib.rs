//! The `hosted_vllm` provider: OpenAI's Files and Batch APIs for vLLM
//! deployments. Plain `vllm serve` has neither, so by default files live in
//! the gateway's store and batches run in the gateway's engine, line by line
//! against the deployment's `/v1/chat/completions` (and friends). Where an
//! upstream has its own batch API (`litellm_params.batch_api: upstream`, or
//! `auto` after a probe), calls are forwarded and every ID re-encoded.
//!
//! [`Embedded`] runs it as a library straight against a vLLM server — the
//! Rust counterpart of the seed's Python SDK example.

mod embedded;
mod forward;
mod provider;
mod upstream;

pub use embedded::Embedded;
pub use provider::VllmProvider;
pub use upstream::{upstream, upstreams};
