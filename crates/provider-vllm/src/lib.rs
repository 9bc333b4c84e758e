//! The `hosted_vllm` provider: OpenAI's Files and Batch APIs for vLLM
//! deployments. Plain `vllm serve` has neither, so files live in the
//! gateway's store and batches run in the gateway's engine, line by line
//! against the deployment's `/v1/chat/completions` (and friends).

mod provider;

pub use provider::VllmProvider;
