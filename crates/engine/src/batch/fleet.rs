//! A deployment's `max_parallel_requests` holds for the whole fleet of
//! instances sharing a store: each instance heartbeats, every [`BEAT`],
//! which model groups it has work for, reads who else does, and sends to a
//! group's deployments only its share of their limits — an even split
//! between the instances present for the group.
//!
//! An instance starting work on a group first declares it and waits
//! [`JOIN_AFTER`] (two and a half beats), by which time every other instance has read
//! the declaration and shrunk its own share; only then does it send —
//! unless no other instance declares the group, in which case nobody can
//! be sending to it and it sends at once, its share split with every live
//! instance (each keeps an [`ALIVE`] presence, work or not) until its
//! next beat: alone, the whole limit. The
//! shares therefore add up to the limit at all times, except that requests
//! another instance already had in flight above its new share finish
//! normally (for at most one request's duration). An instance that stops
//! beating (killed) stops counting after [`LIVE_FOR`]; one that stops
//! gracefully, or has had no work for a beat, leaves at once.
//!
//! On a store no other instance uses (the embedded SQLite) none of this
//! runs: every group is open with the whole limit from the start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use batchgate_store::{Presence, ALIVE};
use tokio::time::{Instant, MissedTickBehavior};

use super::shared::Shared;

/// How often an instance heartbeats and re-reads the fleet.
pub const BEAT: Duration = Duration::from_millis(500);
/// How long a new member waits between declaring a group and sending to
/// it: every other member re-reads the fleet within one beat; the rest is
/// margin for a slow beat.
pub const JOIN_AFTER: Duration = Duration::from_millis(1250);
/// Seconds after its last heartbeat an instance stops counting.
pub const LIVE_FOR: i64 = 10;
/// Beats without work after which an instance leaves a group: not one,
/// so that the gap between two chunks does not make it wait to join again.
const LEAVE_AFTER_IDLE_BEATS: u32 = 4;

/// Whom a group's limit is split with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Split {
    /// The instances declaring the group.
    Declared,
    /// Every live instance.
    Live,
}

/// Where this instance stands with one model group.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Declared at this time; not sending yet.
    Joining(Instant),
    /// Sending its share; the beats in a row it had no work.
    Member { idle: u32 },
}

/// This instance's standing with each model group, decided beat by beat.
/// Pure (time is passed in), so its rules are tested without a store.
#[derive(Debug, Default)]
struct Membership {
    phases: HashMap<String, Phase>,
}

impl Membership {
    /// Before a beat: groups with work (`busy`) join from `now`; groups
    /// without work for [`LEAVE_AFTER_IDLE_BEATS`], or still joining,
    /// leave. Returns those that left (to close).
    fn before_beat(&mut self, busy: &[String], now: Instant) -> Vec<String> {
        let mut left = Vec::new();
        self.phases.retain(|model, phase| {
            let keep = match phase {
                _ if busy.contains(model) => {
                    if let Phase::Member { idle } = phase {
                        *idle = 0;
                    }
                    true
                }
                Phase::Member { idle } => {
                    *idle += 1;
                    *idle < LEAVE_AFTER_IDLE_BEATS
                }
                Phase::Joining(_) => false,
            };
            if !keep {
                left.push(model.clone());
            }
            keep
        });
        for model in busy {
            self.phases
                .entry(model.clone())
                .or_insert(Phase::Joining(now));
        }
        left.sort();
        left
    }

    /// The groups to declare in the beat, and [`ALIVE`].
    fn declared(&self) -> Vec<String> {
        let mut out: Vec<String> = self.phases.keys().cloned().collect();
        out.push(ALIVE.to_string());
        out.sort();
        out
    }

    /// After a beat that succeeded at `now`: the groups that may send, and
    /// how their share is counted. Members, and those joining for
    /// [`JOIN_AFTER`] (which become members), split with the instances
    /// declaring the group ([`Split::Declared`]). A joiner whose group no
    /// other instance declares (`uncontested`: nobody can be sending to
    /// it) sends at once, splitting with every live instance
    /// ([`Split::Live`]): any of them may be starting on the group at this
    /// very moment without having seen this one, but none of them can take
    /// more than that share either.
    fn after_beat(
        &mut self,
        now: Instant,
        uncontested: impl Fn(&str) -> bool,
    ) -> Vec<(String, Split)> {
        let mut open = Vec::new();
        for (model, phase) in self.phases.iter_mut() {
            let split = match *phase {
                Phase::Member { .. } => Split::Declared,
                Phase::Joining(since) if now.duration_since(since) >= JOIN_AFTER => Split::Declared,
                Phase::Joining(_) if uncontested(model) => Split::Live,
                Phase::Joining(_) => continue,
            };
            *phase = match *phase {
                Phase::Joining(_) => Phase::Member { idle: 0 },
                member => member,
            };
            open.push((model.clone(), split));
        }
        open.sort();
        open
    }
}

/// Runs until shutdown (only on a shared store), then leaves every group
/// so the others take its share at their next beat.
pub async fn heartbeat(shared: Arc<Shared>) {
    if !shared.gw.store.is_shared() {
        return;
    }
    let mut membership = Membership::default();
    let mut every = tokio::time::interval(BEAT);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shared.limits.knock().notified() => {}
            _ = shared.shutdown.cancelled() => break,
        }
        let busy = shared.limits.busy_models();
        for model in membership.before_beat(&busy, Instant::now()) {
            shared.limits.close(&model);
        }
        let Some(present) = beat(&shared, &membership.declared()).await else {
            continue;
        };
        let me = shared.instance.as_str();
        let open = membership.after_beat(Instant::now(), |m| uncontested(&present, me, m));
        for (model, split) in open {
            shared
                .limits
                .open(&model, me, &members(&present, &model, split));
        }
    }
    beat(&shared, &[]).await;
}

/// Whether no instance but `me` declares `model`.
fn uncontested(present: &[Presence], me: &str, model: &str) -> bool {
    !present.iter().any(|p| p.model == model && p.instance != me)
}

/// The instances `model`'s limit is split between: those declaring it, or
/// every live one.
fn members<'a>(present: &'a [Presence], model: &str, split: Split) -> Vec<&'a str> {
    present
        .iter()
        .filter(|p| split == Split::Live || p.model == model)
        .map(|p| p.instance.as_str())
        .collect()
}

/// One heartbeat; `None` if it failed (the shares stay as they are and
/// the next beat retries; the others count this instance for
/// [`LIVE_FOR`] meanwhile).
async fn beat(shared: &Shared, models: &[String]) -> Option<Vec<Presence>> {
    let now = shared.gw.now();
    let since = now.saturating_sub(LIVE_FOR);
    match shared
        .gw
        .store
        .heartbeat(&shared.instance, models, now, since)
        .await
    {
        Ok(present) => Some(present),
        Err(e) => {
            tracing::warn!(error = %e, "fleet heartbeat failed; shares unchanged");
            None
        }
    }
}

/// `me`'s share of `limit` between `members` and `me` (named once each
/// whether or not `me` is among them): an even split with the remainder
/// going to the first names in order, so the shares of all members add up
/// to exactly `limit` — but at least 1, so with more instances than the
/// limit each still sends one at a time.
pub fn share_of(limit: usize, members: &[&str], me: &str) -> usize {
    let mut names: Vec<&str> = members.to_vec();
    names.push(me);
    names.sort_unstable();
    names.dedup();
    let n = names.len();
    let rank = names.iter().position(|m| *m == me).unwrap_or(0);
    let extra = usize::from(rank < limit % n);
    (limit / n + extra).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn contested(_: &str) -> bool {
        false
    }

    fn declared(model: &str) -> (String, Split) {
        (model.to_string(), Split::Declared)
    }

    #[test]
    fn a_group_is_declared_at_once_and_sends_only_after_the_join_wait() {
        let t0 = Instant::now();
        let mut m = Membership::default();
        assert!(m.before_beat(&names(&["m"]), t0).is_empty());
        assert_eq!(m.declared(), ["", "m"], "the group, and alive");
        assert!(m.after_beat(t0, contested).is_empty(), "not at once");
        let almost = t0 + JOIN_AFTER - Duration::from_millis(1);
        assert!(m.before_beat(&names(&["m"]), almost).is_empty());
        assert!(
            m.after_beat(almost, contested).is_empty(),
            "not before JOIN_AFTER"
        );
        assert_eq!(m.after_beat(t0 + JOIN_AFTER, contested), [declared("m")]);
        // A member stays open at every beat.
        assert!(m
            .before_beat(&names(&["m"]), t0 + 2 * JOIN_AFTER)
            .is_empty());
        assert_eq!(
            m.after_beat(t0 + 2 * JOIN_AFTER, contested),
            [declared("m")]
        );
    }

    #[test]
    fn an_uncontested_group_sends_at_once_split_with_every_live_instance() {
        let t0 = Instant::now();
        let mut m = Membership::default();
        m.before_beat(&names(&["m", "n"]), t0);
        let open = m.after_beat(t0, |model| model == "n");
        assert_eq!(open, [("n".to_string(), Split::Live)], "m is contested");
        // A member from then on, split with those declaring it.
        assert_eq!(m.after_beat(t0, contested), [declared("n")]);
        let later = t0 + JOIN_AFTER;
        assert_eq!(
            m.after_beat(later, contested),
            [declared("m"), declared("n")]
        );
    }

    #[test]
    fn a_member_leaves_after_idle_beats_and_a_joiner_at_once() {
        let t0 = Instant::now();
        let later = t0 + JOIN_AFTER;
        let mut m = Membership::default();
        m.before_beat(&names(&["a", "b"]), t0);
        m.after_beat(later, contested);
        m.before_beat(&names(&["a", "b", "c"]), later);
        // `c` is still joining when its work stops: it leaves at once.
        assert_eq!(m.before_beat(&names(&["a", "b"]), later), ["c"]);
        // `b` is a member: the gap between two chunks does not make it
        // leave; LEAVE_AFTER_IDLE_BEATS idle beats do.
        for _ in 1..LEAVE_AFTER_IDLE_BEATS {
            assert!(m.before_beat(&names(&["a"]), later).is_empty());
        }
        assert_eq!(m.before_beat(&names(&["a"]), later), ["b"]);
        assert_eq!(m.declared(), ["", "a"]);
        // Work again resets the count.
        m.before_beat(&[], later);
        m.before_beat(&names(&["a"]), later);
        for _ in 1..LEAVE_AFTER_IDLE_BEATS {
            assert!(m.before_beat(&[], later).is_empty());
        }
        assert_eq!(m.before_beat(&[], later), ["a"]);
        assert_eq!(m.declared(), [ALIVE], "alive without work");
    }

    fn presence(instance: &str, model: &str) -> Presence {
        Presence {
            instance: instance.into(),
            model: model.into(),
            heartbeat_at: 0,
        }
    }

    #[test]
    fn who_declares_what_decides_the_split() {
        let present = [
            presence("a", ALIVE),
            presence("a", "m"),
            presence("b", ALIVE),
            presence("c", ALIVE),
            presence("c", "n"),
        ];
        assert!(uncontested(&present, "a", "m"), "only a itself declares m");
        assert!(!uncontested(&present, "b", "m"), "a declares m");
        assert!(!uncontested(&present, "a", "n"), "c declares n");
        assert!(uncontested(&present, "a", "o"));
        assert_eq!(members(&present, "m", Split::Declared), ["a"]);
        assert_eq!(members(&present, "n", Split::Declared), ["c"]);
        // Every live instance, once per presence (share_of counts names
        // once).
        let live = members(&present, "m", Split::Live);
        assert_eq!(live, ["a", "a", "b", "c", "c"]);
        assert_eq!(share_of(64, &live, "b"), 21);
    }

    #[test]
    fn alone_takes_all() {
        assert_eq!(share_of(64, &[], "a"), 64);
        assert_eq!(share_of(64, &["a"], "a"), 64);
    }

    #[test]
    fn the_remainder_goes_to_the_first_names() {
        let members = ["a", "b", "c"];
        let shares: Vec<_> = members.iter().map(|m| share_of(64, &members, m)).collect();
        assert_eq!(shares, [22, 21, 21]);
        // One joining counts itself in before the others have seen it.
        assert_eq!(share_of(64, &["a", "c"], "b"), 21);
    }

    #[test]
    fn each_sends_at_least_one() {
        assert_eq!(share_of(2, &["a", "b", "c"], "c"), 1);
    }

    proptest! {
        #[test]
        fn shares_add_up_to_the_limit(limit in 1usize..5000, n in 1usize..40) {
            let names: Vec<String> = (0..n).map(|i| format!("inst-{i:03}")).collect();
            let members: Vec<&str> = names.iter().map(String::as_str).collect();
            let sum: usize = members.iter().map(|m| share_of(limit, &members, m)).sum();
            prop_assert_eq!(sum, limit.max(n));
        }
    }
}
