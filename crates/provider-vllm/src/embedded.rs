//! batchgate as a library: Files and Batch APIs straight against one vLLM
//! server, with the embedded store, no HTTP server in between.

use std::path::Path;
use std::sync::Arc;

use batchgate_config::Config;
use batchgate_core::{ApiError, Deployment, ObjectRef, RequestCtx};
use batchgate_engine::{system_clock, Assembly, Parts, Running};
use batchgate_ids::Kind;
use batchgate_store::{Blobs, SqliteStore};

use batchgate_provider_openai::OpenAiCompatProvider;

/// A provider, its gateway and the one deployment it serves.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use batchgate_core::{BatchApi, CreateBatchRequest, FileApi, FilePurpose, Upload};
/// use futures::StreamExt;
///
/// // Reads HOSTED_VLLM_API_BASE (and HOSTED_VLLM_API_KEY if set).
/// let bg = batchgate_provider_vllm::Embedded::from_env(
///     "my-vllm-model", "meta-llama/Llama-2-7b-chat-hf", "./batchgate-data".as_ref()).await?;
/// let lines = r#"{"custom_id":"request-1","method":"POST","url":"/v1/chat/completions","body":{"model":"my-vllm-model","messages":[{"role":"user","content":"Hello!"}]}}"#;
/// let upload = Upload {
///     filename: "batch_requests.jsonl".into(),
///     purpose: FilePurpose::Batch,
///     expires_after: None,
///     body: futures::stream::iter([Ok(bytes::Bytes::from(lines))]).boxed(),
/// };
/// let file = bg.provider.create_file(&bg.ctx(), &bg.deployment, upload).await?;
/// let batch = bg.provider.create_batch(&bg.ctx(), &bg.file(&file.id)?, CreateBatchRequest {
///     input_file_id: file.id.clone(),
///     endpoint: "/v1/chat/completions".into(),
///     completion_window: "24h".into(),
///     metadata: None,
///     output_expires_after: None,
/// }).await?;
/// let status = bg.provider.retrieve_batch(&bg.ctx(), &bg.batch(&batch.id)?).await?.status;
/// # let _ = status; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Embedded {
    pub provider: OpenAiCompatProvider,
    pub deployment: Arc<Deployment>,
    gateway: Assembly,
    _running: Running,
}

impl Embedded {
    /// One deployment named `model_name` serving `served_model` at
    /// `HOSTED_VLLM_API_BASE`, storing everything under `data_dir`. Starts
    /// the engine, which resumes any batch a previous run left unfinished.
    pub async fn from_env(
        model_name: &str,
        served_model: &str,
        data_dir: &Path,
    ) -> Result<Embedded, Box<dyn std::error::Error + Send + Sync>> {
        let yaml = format!(
            "model_list:\n- model_name: {}\n  litellm_params:\n    model: {}\n",
            serde_json::to_string(model_name)?,
            serde_json::to_string(&format!("hosted_vllm/{served_model}"))?
        );
        let config = Config::from_yaml(&yaml, &[crate::NAME], &|n| std::env::var(n).ok())?;
        let parts = Parts {
            store: Arc::new(SqliteStore::open(&data_dir.join("batchgate.db")).await?),
            blobs: Blobs::local(&data_dir.join("blobs"))?,
            id_secret: batchgate_ids::secret::load_or_generate(data_dir)?,
            deployments: config.deployments,
            general: config.general,
            batch: config.batch,
            clock: system_clock(),
        };
        let (gateway, provider) = crate::assemble(parts, "embedded")?;
        let deployment = gateway
            .ids()
            .router()
            .pick(model_name)
            .ok_or("the configured model is missing")?;
        Ok(Embedded {
            _running: gateway.start(),
            provider,
            deployment,
            gateway,
        })
    }

    /// The gateway's handles (catalog, accounts, engine).
    pub fn gateway(&self) -> &Assembly {
        &self.gateway
    }

    /// The context of the library's own calls: full access.
    pub fn ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: batchgate_ids::request_id(),
            caller: batchgate_core::Caller::master(),
        }
    }

    /// Routes a file ID for the provider's calls.
    pub fn file(&self, id: &str) -> Result<ObjectRef, ApiError> {
        self.gateway.ids().route(Kind::File, id)
    }

    /// Routes a batch ID for the provider's calls.
    pub fn batch(&self, id: &str) -> Result<ObjectRef, ApiError> {
        self.gateway.ids().route(Kind::Batch, id)
    }
}
