//! The test S3 server: `cargo xtask ci` starts moto's and names it in
//! `BATCHGATE_TEST_S3_ENDPOINT` (and sets `BATCHGATE_REQUIRE_S3`, which
//! makes its absence a failure rather than a skip).

use anyhow::{bail, Context, Result};

/// A fresh, empty bucket on the test S3 server.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub endpoint: String,
    pub name: String,
}

impl Bucket {
    /// A new bucket, or `None` (after saying so) when no server is set.
    pub async fn create(tag: &str) -> Result<Option<Bucket>> {
        let Ok(endpoint) = std::env::var("BATCHGATE_TEST_S3_ENDPOINT") else {
            if std::env::var_os("BATCHGATE_REQUIRE_S3").is_some() {
                bail!("BATCHGATE_REQUIRE_S3 is set but BATCHGATE_TEST_S3_ENDPOINT is not");
            }
            eprintln!("no BATCHGATE_TEST_S3_ENDPOINT: S3 test skipped (cargo xtask ci runs it)");
            return Ok(None);
        };
        let name = format!("{tag}-{}-{}", std::process::id(), crate::free_port()?);
        let r = reqwest::Client::new()
            .put(format!("{endpoint}/{name}"))
            .send()
            .await
            .context("the test S3 server does not answer")?;
        if !r.status().is_success() {
            bail!("cannot create bucket {name}: {}", r.status());
        }
        Ok(Some(Bucket { endpoint, name }))
    }

    /// The standard AWS variables that point a client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// The keys of every object under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let body = reqwest::Client::new()
            .get(format!("{}/{}", self.endpoint, self.name))
            .query(&[("list-type", "2"), ("prefix", prefix)])
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(body
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect())
    }
}
