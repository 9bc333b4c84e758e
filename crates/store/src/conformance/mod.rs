//! The store contract as one suite every backend runs: claims are exclusive
//! and durable, every runner write is fenced by its lease, the journal and
//! its spend are exactly-once, a file delete racing a batch create never
//! leaves a batch without its input, listings page by cursor and hide other
//! owners. Written against `dyn MetaStore`; a backend runs it by calling
//! [`conformance_tests!`](crate::conformance_tests) in a test file of its
//! own with a function that opens a fresh, empty [`Backend`].
//!
//! Several checks open a second handle on the same database
//! ([`Backend::open_again`]): a second gateway instance racing the first,
//! or the same one after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chunks;
mod files;
mod fleet;
mod journal;
mod keys;
mod leases;
pub mod rows;

use std::any::Any;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::{LineResult, MetaStore};

pub use chunks::*;
pub use files::*;
pub use fleet::*;
pub use journal::*;
pub use keys::*;
pub use leases::*;

/// Opens another handle (its own connections) on a backend's database.
type OpenAgain = Box<dyn Fn() -> BoxFuture<'static, Arc<dyn MetaStore>> + Send + Sync>;

/// A fresh, empty store under test and what keeps its database alive.
pub struct Backend {
    /// Named in assertion messages.
    pub name: &'static str,
    pub store: Arc<dyn MetaStore>,
    open_again: OpenAgain,
    /// Dropped with the backend (a temporary directory, a scratch schema).
    _keep: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("name", &self.name).finish()
    }
}

impl Backend {
    /// `store` is the first handle; `open_again` opens another one on the
    /// same database; `keep` lives as long as the backend.
    pub fn new<F>(
        name: &'static str,
        store: Arc<dyn MetaStore>,
        open_again: F,
        keep: impl Any + Send + Sync,
    ) -> Backend
    where
        F: Fn() -> BoxFuture<'static, Arc<dyn MetaStore>> + Send + Sync + 'static,
    {
        Backend {
            name,
            store,
            open_again: Box::new(open_again),
            _keep: Box::new(keep),
        }
    }

    /// A second handle on the same database: another instance, or this
    /// one restarted.
    pub async fn open_again(&self) -> Arc<dyn MetaStore> {
        (self.open_again)().await
    }
}

/// Defines one `#[tokio::test]` per check of the suite, each on a fresh
/// backend from `$open` (an `async fn() -> Backend` in the calling test
/// file, which needs `tokio` with its test macros). A new check is a `pub
/// async fn(&Backend)` in this module and a name in the list below.
#[macro_export]
macro_rules! conformance_tests {
    ($open:path) => {
        $crate::conformance_tests!(@each $open;
            a_batch_is_claimed_by_one_runner_at_a_time,
            a_stale_lease_can_never_write,
            transitions_apply_only_from_the_named_states,
            instances_race_for_claims,
            forwarded_batches_are_never_claimed,
            finalizing_commits_files_and_status_together,
            the_journal_counts_each_line_once,
            a_line_is_charged_once_to_its_key_and_team,
            spend_from_two_instances_adds_up_exactly,
            batch_stats_count_statuses_and_pending_lines,
            lease_holders_name_each_instance_and_its_batches,
            deleting_an_input_and_creating_its_batch_never_both_win,
            a_batch_keeps_its_input_until_it_ends,
            listings_page_by_cursor_and_hide_other_owners,
            files_persist_list_paginate_and_expire,
            listings_respect_team_ownership,
            foreign_cursors_page_like_unknown_ones,
            expiry_spares_the_inputs_of_running_batches,
            batch_listings_filter_by_model,
            keys_and_teams_round_trip,
            chunks_are_planned_once_and_claimed_only_while_running,
            instances_race_for_chunks,
            an_instance_takes_a_bounded_share_of_each_batch,
            a_stale_chunk_lease_can_never_write,
            chunks_are_released_and_end_with_their_batch,
            budget_resets_restart_periods_and_saturate,
            heartbeats_show_who_works_on_what,
        );
    };
    (@each $open:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::conformance::$check(&$open().await).await;
            }
        )*
    };
}

/// A successful journal line without usage or cost.
pub(crate) fn result(line_no: u64) -> LineResult {
    LineResult {
        line_no,
        custom_id: format!("c{line_no}"),
        ok: true,
        line: format!("{{\"custom_id\":\"c{line_no}\"}}"),
        usage: None,
        charge: None,
    }
}

/// An input file `in-<key>` and a validating batch `key` over it.
pub(crate) async fn with_batch(store: &Arc<dyn MetaStore>, key: &str) {
    store
        .insert_file(&rows::file(&format!("in-{key}")))
        .await
        .unwrap();
    assert!(store
        .insert_batch(&rows::batch(key, &format!("in-{key}")))
        .await
        .unwrap());
}

/// A non-master caller.
pub(crate) fn caller(key_id: &str, team: Option<&str>) -> batchgate_core::Caller {
    batchgate_core::Caller {
        key_id: Some(key_id.into()),
        team_id: team.map(str::to_string),
        is_master: false,
        models: vec![],
    }
}
