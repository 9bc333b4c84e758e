//! A small HTTP client for the gateway's OpenAI-compatible Files and Batch
//! API: bearer auth, OpenAI error envelopes turned into [`CliError::Http`],
//! uploads streamed from disk and downloads streamed to any writer.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::{CliError, Result};

/// How long a JSON call (not an upload or download) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to one running gateway.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
}

impl Client {
    /// A client for the gateway at `base_url` (`http://host:port`, with or
    /// without a trailing `/v1`), sending `api_key` as a bearer token.
    pub fn new(base_url: &str, api_key: Option<&str>) -> Result<Client> {
        let trimmed = base_url.trim().trim_end_matches('/');
        let base = trimmed.strip_suffix("/v1").unwrap_or(trimmed).to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--base-url must start with http:// or https://, got '{base_url}'"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("batchgate-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::transport(base.clone(), &e))?;
        Ok(Client {
            http,
            base,
            api_key: api_key.filter(|k| !k.is_empty()).map(str::to_string),
        })
    }

    /// The gateway's base URL, without a trailing `/v1`.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.api_key {
            Some(key) => rb.bearer_auth(key),
            None => rb,
        }
    }

    /// Sends `rb` and returns the response if its status is 2xx.
    async fn send(&self, path: &str, rb: RequestBuilder) -> Result<Response> {
        let resp = rb
            .send()
            .await
            .map_err(|e| CliError::transport(self.url(path), &e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(CliError::Http {
            status: status.as_u16(),
            message: error_message(&body)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string()),
        })
    }

    async fn json(&self, path: &str, rb: RequestBuilder) -> Result<Value> {
        let resp = self.send(path, rb.timeout(CALL_TIMEOUT)).await?;
        resp.json()
            .await
            .map_err(|e| CliError::Protocol(format!("{} did not answer JSON: {e}", self.url(path))))
    }

    /// `GET path?query`, parsed as JSON.
    pub async fn get_json(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.json(path, self.request(Method::GET, path).query(query))
            .await
    }

    /// `GET path` as text (e.g. `/metrics`).
    pub async fn get_text(&self, path: &str) -> Result<String> {
        let rb = self.request(Method::GET, path).timeout(CALL_TIMEOUT);
        let resp = self.send(path, rb).await?;
        resp.text()
            .await
            .map_err(|e| CliError::transport(self.url(path), &e))
    }

    /// `POST path` with a JSON body, parsed as JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        self.json(path, self.request(Method::POST, path).json(body))
            .await
    }

    /// `POST path` without a body, parsed as JSON.
    pub async fn post_empty(&self, path: &str) -> Result<Value> {
        self.json(path, self.request(Method::POST, path)).await
    }

    /// `DELETE path`, parsed as JSON.
    pub async fn delete_json(&self, path: &str) -> Result<Value> {
        self.json(path, self.request(Method::DELETE, path)).await
    }

    /// Uploads the file at `file` to `POST /v1/files` with `purpose`, routed
    /// to `model` (`x-litellm-model`) when given. The body is streamed from
    /// disk; the file is never read whole into memory.
    pub async fn upload(&self, file: &Path, purpose: &str, model: Option<&str>) -> Result<Value> {
        let shown = file.display().to_string();
        let handle = tokio::fs::File::open(file)
            .await
            .map_err(|e| CliError::io(format!("cannot open {shown}"), e))?;
        let len = handle
            .metadata()
            .await
            .map_err(|e| CliError::io(format!("cannot stat {shown}"), e))?
            .len();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "input.jsonl".to_string());
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(handle));
        let part = reqwest::multipart::Part::stream_with_length(body, len).file_name(name);
        // `purpose` first: the gateway then pipes the file part straight
        // into its store instead of spooling it.
        let form = reqwest::multipart::Form::new()
            .text("purpose", purpose.to_string())
            .part("file", part);
        let path = "/v1/files";
        let mut rb = self.request(Method::POST, path).multipart(form);
        if let Some(model) = model {
            rb = rb.header("x-litellm-model", model);
        }
        let resp = self.send(path, rb).await?;
        resp.json()
            .await
            .map_err(|e| CliError::Protocol(format!("{} did not answer JSON: {e}", self.url(path))))
    }

    /// Streams the body of `GET path` into `sink`; returns the bytes written.
    pub async fn download<W>(&self, path: &str, sink: &mut W) -> Result<u64>
    where
        W: AsyncWrite + Unpin,
    {
        let mut resp = self.send(path, self.request(Method::GET, path)).await?;
        let mut written = 0u64;
        loop {
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| CliError::transport(self.url(path), &e))?;
            let Some(chunk) = chunk else { break };
            sink.write_all(&chunk)
                .await
                .map_err(|e| CliError::io("cannot write the download", e))?;
            written += chunk.len() as u64;
        }
        sink.flush()
            .await
            .map_err(|e| CliError::io("cannot write the download", e))?;
        Ok(written)
    }
}

/// The message of an error body: OpenAI's `{"error": {"message"}}`, vLLM's
/// flat `{"message"}`, FastAPI's `{"detail"}`, or short plain text.
fn error_message(body: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let found = v["error"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .or_else(|| v["message"].as_str())
            .or_else(|| v["detail"].as_str());
        if let Some(m) = found {
            return Some(m.to_string());
        }
    }
    let text = body.trim();
    (!text.is_empty()).then(|| text.chars().take(500).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_from_every_shape() {
        let openai = r#"{"error":{"message":"Incorrect API key provided.","type":"x"}}"#;
        assert_eq!(
            error_message(openai).as_deref(),
            Some("Incorrect API key provided.")
        );
        assert_eq!(
            error_message(r#"{"message":"boom"}"#).as_deref(),
            Some("boom")
        );
        assert_eq!(error_message("plain").as_deref(), Some("plain"));
        assert_eq!(error_message("  "), None);
    }

    #[test]
    fn base_url_drops_slash_and_v1() {
        let c = Client::new("http://h:1/v1/", None);
        assert!(matches!(c, Ok(ref c) if c.base() == "http://h:1"));
        assert!(Client::new("h:1", None).is_err());
    }
}
