//! The seed's Python SDK example, in Rust, with batchgate embedded as a
//! library: upload, create a batch, poll, print the results.
//!
//! ```sh
//! HOSTED_VLLM_API_BASE=http://localhost:8000 cargo run -p batchgate-provider-vllm --example embedded
//! ```

use std::time::Duration;

use batchgate_core::{BatchApi, BatchStatus, CreateBatchRequest, FileApi, FilePurpose, Upload};
use batchgate_provider_vllm::Embedded;
use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data_dir = std::env::temp_dir().join("batchgate-embedded-example");
    let served =
        std::env::var("VLLM_MODEL").unwrap_or_else(|_| "meta-llama/Llama-2-7b-chat-hf".into());
    let bg = Embedded::from_env("my-vllm-model", &served, &data_dir)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let lines = concat!(
        r#"{"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "my-vllm-model", "messages": [{"role": "user", "content": "Hello!"}]}}"#,
        "\n",
        r#"{"custom_id": "request-2", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "my-vllm-model", "messages": [{"role": "user", "content": "How are you?"}]}}"#,
        "\n"
    );
    let upload = Upload {
        filename: "batch_requests.jsonl".into(),
        purpose: FilePurpose::Batch,
        expires_after: None,
        body: futures::stream::iter([Ok(bytes::Bytes::from(lines))]).boxed(),
    };
    let file = bg
        .provider
        .create_file(&bg.ctx(), &bg.deployment, upload)
        .await?;
    println!("File uploaded: {}", file.id);
    let request = CreateBatchRequest {
        input_file_id: file.id.clone(),
        endpoint: "/v1/chat/completions".into(),
        completion_window: "24h".into(),
        metadata: None,
        output_expires_after: None,
    };
    let batch = bg
        .provider
        .create_batch(&bg.ctx(), &bg.file(&file.id)?, request)
        .await?;
    println!("Batch created: {}", batch.id);
    let done = loop {
        let b = bg
            .provider
            .retrieve_batch(&bg.ctx(), &bg.batch(&batch.id)?)
            .await?;
        println!("Status: {}", b.status.as_str());
        match b.status {
            BatchStatus::Completed => break b,
            s if s.is_terminal() => anyhow::bail!("Batch failed: {}", s.as_str()),
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    if let Some(output) = done.output_file_id {
        let mut content = bg
            .provider
            .file_content(&bg.ctx(), &bg.file(&output)?)
            .await?
            .body;
        let mut results = Vec::new();
        while let Some(chunk) = content.next().await {
            results.extend_from_slice(&chunk?);
        }
        println!("Results: {}", String::from_utf8_lossy(&results));
    }
    Ok(())
}
