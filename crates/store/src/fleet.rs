//! Who in a fleet has work for what: each instance heartbeats the model
//! groups it is sending batch lines to, so that a deployment's
//! `max_parallel_requests` can be split between the instances using it
//! and hold for the whole fleet.

use async_trait::async_trait;

use crate::StoreError;

/// The model of the presence every live instance keeps, with or without
/// work: that it is alive.
pub const ALIVE: &str = "";

/// One instance working on one model group (or [`ALIVE`]), as of its last
/// heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The instance's name (the owner its leases carry).
    pub instance: String,
    /// The model group (`model_name`).
    pub model: String,
    /// Unix seconds of its last heartbeat for this group.
    pub heartbeat_at: i64,
}

/// The fleet's heartbeats.
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Whether other gateway instances may use this store at the same time
    /// (a database server), so that limits must be shared with them.
    fn is_shared(&self) -> bool {
        false
    }

    /// Records, at `now`, that `instance` has work for exactly `models`
    /// (its other groups, and with none all of its rows, are dropped in the
    /// same transaction), then returns every presence heartbeat at or after
    /// `live_since` — its own included — ordered by model, then instance.
    async fn heartbeat(
        &self,
        instance: &str,
        models: &[String],
        now: i64,
        live_since: i64,
    ) -> Result<Vec<Presence>, StoreError>;

    /// Every presence heartbeat at or after `live_since`, as
    /// [`FleetStore::heartbeat`] returns them, without beating.
    async fn presence(&self, live_since: i64) -> Result<Vec<Presence>, StoreError>;
}
