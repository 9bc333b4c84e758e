//! Who pays: virtual keys, teams, their spend and budgets. The arithmetic of
//! budgets is [`batchgate_cost`]'s; this handle reads and applies it.

use std::sync::Arc;
use std::time::Duration;

use batchgate_core::{ApiError, Caller};
use batchgate_cost::{first_overspent, Budget, Overspent};
use batchgate_store::{KeyStore, MetaStore, SpendStore, StoreError};

use crate::{Background, Clock};

/// How often ended budget periods are restarted in the background (a
/// budget check also restarts an ended period first).
const RESET_EVERY: Duration = Duration::from_secs(60);

/// Keys, teams, the spend ledger and budgets. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn MetaStore>,
    clock: Clock,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    pub fn new(store: Arc<dyn MetaStore>, clock: Clock) -> Accounts {
        Accounts { store, clock }
    }

    /// Unix seconds now (budget periods are judged by it).
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Virtual keys and teams.
    pub fn keys(&self) -> &dyn KeyStore {
        &*self.store
    }

    /// The spend ledger.
    pub fn spend(&self) -> &dyn SpendStore {
        &*self.store
    }

    /// Whether a key or its team (the key named first) has spent its
    /// budget: the one rule both the API (no new work) and running batches
    /// (stop, under `on_budget_exceeded: stop`) apply.
    pub async fn overspent(
        &self,
        key_id: Option<&str>,
        team_id: Option<&str>,
    ) -> Result<Option<Overspent>, StoreError> {
        let mut budgets = Vec::new();
        if let Some(id) = key_id {
            if let Some(k) = self.store.key_by_id(id).await? {
                let budget = Budget {
                    spend: k.spend,
                    max: k.max_budget,
                };
                budgets.push((format!("key {id}"), budget));
            }
        }
        if let Some(id) = team_id {
            if let Some(t) = self.store.team(id).await? {
                let budget = Budget {
                    spend: t.spend,
                    max: t.max_budget,
                };
                budgets.push((format!("team {id}"), budget));
            }
        }
        Ok(first_overspent(budgets))
    }

    /// 400 `budget_exceeded` when the caller's key or team has spent its
    /// budget: no new batch files or batches until the period resets.
    pub async fn check_budget(&self, caller: &Caller) -> Result<(), ApiError> {
        if caller.is_master {
            return Ok(());
        }
        // A period that ended since the last sweep ends now, before the check.
        self.store.reset_budgets(self.now()).await?;
        let (key, team) = (caller.key_id.as_deref(), caller.team_id.as_deref());
        match self.overspent(key, team).await? {
            Some(o) => Err(ApiError::invalid_request(format!(
                "Budget has been exceeded for {}: spend {} ≥ max_budget {}.",
                o.who, o.spend, o.max
            ))
            .with_code("budget_exceeded")),
            None => Ok(()),
        }
    }

    /// Restarts ended budget periods every minute until the handle is
    /// dropped.
    pub fn start_budget_resets(&self) -> Background {
        let accounts = self.clone();
        Background::every(RESET_EVERY, move || {
            let accounts = accounts.clone();
            async move {
                match accounts.store.reset_budgets(accounts.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(reset = n, "budget periods restarted"),
                    Err(e) => tracing::warn!(error = %e, "budget reset failed"),
                }
            }
        })
    }
}
