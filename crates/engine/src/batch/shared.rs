//! What every batch runner of one engine shares.

use std::sync::Arc;

use batchgate_core::{ApiError, ByteStream, Deployment};
use std::collections::HashMap;

use batchgate_cost::{LineCost, Prices, Tokens};
use batchgate_store::{BatchRecord, LineCharge, LineUsage};
use tokio::sync::Notify;

use super::limits::Limits;
use super::upstream::RetryPolicy;
use crate::gateway::Gateway;
use crate::LocalFiles;

/// Longest single input line held in memory.
pub const MAX_LINE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug)]
pub struct Shared {
    pub gw: Gateway,
    pub files: LocalFiles,
    pub upstreams: super::Upstreams,
    pub limits: Limits,
    pub policy: RetryPolicy,
    /// This process's lease-holder name.
    pub instance: String,
    /// Nudges the supervisor to look for work now.
    pub wake: Notify,
    /// The batches this process runs.
    pub running: super::supervisor::Running,
    /// The chunks (of any instance's batches) this process runs.
    pub chunks: super::supervisor::Running,
    /// Fired once on a graceful stop: no more claims, no new lines sent,
    /// in-flight lines finish and are journaled.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Notified whenever a runner ends (shutdown waits on it).
    pub runner_ended: Notify,
    /// Prices by deployment id.
    pub prices: HashMap<String, Prices>,
    /// Batches that have ended never change again: clients that keep
    /// polling them are answered from memory.
    pub ended: moka::future::Cache<String, BatchRecord>,
}

impl Shared {
    /// What a successful line costs on `deployment_id`.
    pub fn charge(&self, deployment_id: &str, u: LineUsage) -> LineCharge {
        let tokens = Tokens {
            input_tokens: u.input_tokens,
            cached_tokens: u.cached_tokens,
            output_tokens: u.output_tokens,
        };
        let cost = self
            .prices
            .get(deployment_id)
            .map(|p| p.batch_line(tokens))
            .unwrap_or_else(LineCost::unpriced);
        LineCharge {
            input: cost.input,
            output: cost.output,
            priced: cost.priced,
        }
    }

    /// The deployment a batch's ID pins (still configured?).
    pub fn deployment_of(&self, rec: &BatchRecord) -> Option<Arc<Deployment>> {
        self.gw
            .ids
            .router()
            .deployments()
            .iter()
            .find(|d| d.id == rec.deployment_id)
            .cloned()
    }

    /// The batch's input bytes, streamed from the blob store.
    pub async fn input_stream(&self, rec: &BatchRecord) -> Result<Option<ByteStream>, ApiError> {
        self.input_stream_from(rec, 0).await
    }

    /// The batch's input bytes from byte `offset` on (a chunk's part).
    pub async fn input_stream_from(
        &self,
        rec: &BatchRecord,
        offset: u64,
    ) -> Result<Option<ByteStream>, ApiError> {
        // Expiry does not matter here: a running batch keeps its input.
        let Some(file) = self.gw.store.get_file(&rec.input_key, i64::MIN).await? else {
            return Ok(None);
        };
        let Some(path) = file.blob_path else {
            return Ok(None);
        };
        Ok(Some(self.gw.blobs.get_stream_from(&path, offset).await?))
    }
}
