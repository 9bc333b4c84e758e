//! The few OpenAI Files/Batch calls the load runs make against a gateway.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

/// A gateway's base URL, its key and one HTTP client.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Api {
            base: base.to_string(),
            key: key.to_string(),
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Streams `path` up as a `purpose=batch` file for `model`; the file ID.
    pub async fn upload(&self, path: &Path, model: &str) -> Result<String> {
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "input.jsonl".into());
        let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::from(file), len)
            .file_name(name);
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part("file", part);
        let r = self
            .http
            .post(self.url("/v1/files"))
            .bearer_auth(&self.key)
            .header("x-litellm-model", model)
            .multipart(form)
            .send()
            .await?;
        id_of(r, "upload").await
    }

    /// Creates a 24h chat-completions batch over `file_id`; the batch ID.
    pub async fn create(&self, file_id: &str) -> Result<String> {
        let r = self
            .http
            .post(self.url("/v1/batches"))
            .bearer_auth(&self.key)
            .json(&json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}))
            .send()
            .await?;
        id_of(r, "create batch").await
    }

    /// `GET /v1/batches/{id}`: status code and body (null if not JSON).
    pub async fn batch(&self, id: &str) -> Result<(u16, Value)> {
        let r = self
            .http
            .get(self.url(&format!("/v1/batches/{id}")))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// Polls every 50 ms until the batch is `completed`; fails on any other
    /// terminal status.
    pub async fn wait_completed(&self, id: &str) -> Result<()> {
        loop {
            let (_, v) = self.batch(id).await?;
            match v["status"].as_str() {
                Some("completed") => return Ok(()),
                Some("failed" | "cancelled" | "expired") => bail!("batch ended {v}"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// `GET /v1/files/{id}/content`: status code and body text.
    pub async fn content(&self, file_id: &str) -> Result<(u16, String)> {
        let r = self
            .http
            .get(self.url(&format!("/v1/files/{file_id}/content")))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.text().await?))
    }

    /// `DELETE /v1/files/{id}`: status code and body.
    pub async fn delete_file(&self, file_id: &str) -> Result<(u16, Value)> {
        let r = self
            .http
            .delete(self.url(&format!("/v1/files/{file_id}")))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}

/// The `id` of a successful JSON answer.
async fn id_of(r: reqwest::Response, what: &str) -> Result<String> {
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{what} answered {status}: {v}");
    }
    v["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{what}: no id in {v}"))
}
