//! How a line's attempts are counted when its replica may be in an outage:
//! what happens between a retryable failure and the next attempt.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, Shared};

use super::{Attempt, RetryPolicy, MAX_RETRY_AFTER};
use crate::batch::breaker::Breaker;
use crate::batch::limits::Slot;

/// Resolves when the batch ends; cloned into every wait that may be long.
pub(super) type Ended = Shared<BoxFuture<'static, ()>>;

/// A line's attempts.
#[derive(Debug, Default)]
pub(super) struct Tries {
    /// Requests sent.
    pub sent: u32,
    /// Attempts spent: `sent` minus those given back for outages.
    pub spent: u32,
    /// This line's outage-type failures in one failure streak of its
    /// replica, `(streak, count)`: spent for now, given back if a probe
    /// confirms that streak as an outage.
    pending: Option<(u64, u32)>,
}

impl Tries {
    /// Counts an attempt and reports it to the replica's breaker.
    pub fn record(&mut self, breaker: &Arc<Breaker>, outcome: &Attempt) {
        self.sent += 1;
        self.spent += 1;
        if outcome.is_outage_type() {
            let streak = breaker.failed();
            self.pending = match self.pending {
                Some((s, n)) if s == streak => Some((s, n + 1)),
                _ => Some((streak, 1)),
            };
        } else {
            breaker.answered();
            self.pending = None;
        }
    }

    /// Gives back the pending failures if their streak is `outage`.
    fn refund(&mut self, outage: Option<u64>) -> bool {
        match self.pending {
            Some((s, n)) if Some(s) == outage => {
                self.spent = self.spent.saturating_sub(n);
                self.pending = None;
                true
            }
            _ => false,
        }
    }
}

/// After a retryable failure: waits out a pause of the replica (giving back
/// attempts lost to a confirmed outage) or the backoff. Returns the slot to
/// go on with and whether to try again; `None` if the batch ended while the
/// line waited for a paused replica.
pub(super) async fn next_try(
    slot: Slot,
    tries: &mut Tries,
    policy: &RetryPolicy,
    retry_after: Option<Duration>,
    ended: &Ended,
    line_no: u64,
) -> Option<(Slot, bool)> {
    if tries.spent >= policy.max_attempts {
        if let Some((streak, _)) = tries.pending {
            // About to fail the line on what may be an outage the threshold
            // has not caught (few lines in flight): let the probe decide.
            slot.breaker.suspect(streak);
        }
    }
    let (slot, refunded) = settle(slot, tries, ended).await?;
    if refunded {
        // The replica is back, or the line moved to one that is up.
        return Some((slot, true));
    }
    if tries.spent >= policy.max_attempts {
        return Some((slot, false));
    }
    // The upstream's Retry-After wins over our backoff, within reason.
    let wait = retry_after.map_or_else(|| policy.backoff(tries.spent), |d| d.min(MAX_RETRY_AFTER));
    tracing::debug!(line_no, attempt = tries.spent, ?wait, "retrying line");
    tokio::time::sleep(wait).await;
    // The replica may have paused during the backoff.
    let (slot, _) = settle(slot, tries, ended).await?;
    Some((slot, true))
}

/// If the slot's replica is paused, waits for the first probe's verdict
/// and, should it stay paused, for a slot on a replica that is up. Returns
/// the slot and whether the line's pending failures were given back.
async fn settle(slot: Slot, tries: &mut Tries, ended: &Ended) -> Option<(Slot, bool)> {
    if slot.breaker.dispatchable() {
        // It may have paused and resumed since the failure: the outage
        // was confirmed all the same.
        let refunded = tries.refund(slot.breaker.last_outage());
        return Some((slot, refunded));
    }
    let verdict = tokio::select! {
        v = slot.breaker.verdict() => v,
        () = ended.clone() => return None,
    };
    let refunded = tries.refund(verdict.outage);
    // Judged: whatever was not given back stays spent.
    tries.pending = None;
    if verdict.up {
        return Some((slot, refunded));
    }
    let slot = tokio::select! {
        s = slot.move_off() => s?,
        () = ended.clone() => return None,
    };
    Some((slot, refunded))
}
