//! Calls made with a key other than the master key: a virtual key's view
//! of the gateway, for ownership tests.

use anyhow::{bail, Result};
use reqwest::Method;
use serde_json::Value;

use crate::Gateway;

impl Gateway {
    /// Any method with `key`, and a JSON body when given; status and JSON
    /// body (null if the body is not JSON).
    pub async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// Uploads `content` as a batch file for `model` with `key`.
    pub async fn upload_as(&self, key: &str, model: &str, content: Vec<u8>) -> Result<Value> {
        let part = reqwest::multipart::Part::bytes(content).file_name("input.jsonl");
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part("file", part);
        let r = self
            .http
            .post(self.url("/v1/files"))
            .bearer_auth(key)
            .header("x-litellm-model", model)
            .multipart(form)
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        if !status.is_success() {
            bail!("upload failed: {status} {body}");
        }
        Ok(body)
    }

    /// A new virtual key (`/key/generate` with `body`), its secret value.
    pub async fn new_key(&self, body: &Value) -> Result<String> {
        let (status, k) = self.post("/key/generate", body).await?;
        match k["key"].as_str() {
            Some(key) if status == 200 => Ok(key.to_string()),
            _ => bail!("key/generate failed: {status} {k}"),
        }
    }
}
