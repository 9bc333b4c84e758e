//! The limit from the server's own gauges (running, waiting, KV cache).
//!
//! Alone on a server, the aim is a full batch and a small queue. With other
//! clients on it (interactive users, another gateway), the aim is one free
//! place and no queue of ours: a request of theirs then starts at once
//! instead of waiting for one of ours to finish, whatever the server's
//! scheduling policy. Others show as more requests on the server than we
//! can have there.

use crate::{Observation, ServerLoad};

/// The queue left standing on purpose when alone, as a share of the
/// running batch: a waiting request takes a freed place at the server's
/// next step, where one sent only once a place is free arrives a round trip
/// late and the place idles meanwhile (on a small, fast server that costs
/// several percent of throughput).
const QUEUE_SHARE: f64 = 0.02;
/// Once a queue has been seen, growth starts at limit/2^this…
const FIRST_STEP_SHIFT: u32 = 5;
/// … and doubles with every tick that grows again, up to doubling the limit.
const MAX_STEP_SHIFT: u32 = FIRST_STEP_SHIFT;
/// KV-cache use from which growth slows to small steps…
const KV_HIGH: f64 = 0.8;
/// … and stops: the server has no room for more sequences, whatever its
/// queue says yet.
const KV_FULL: f64 = 0.95;
/// Ticks (2 s) that other clients count as present after they were last
/// seen: an interactive user between two requests is still there.
const OTHERS_MEMORY: u32 = 8;
/// Ticks (2 s) a raise may take to show on the server before growth goes
/// on regardless.
const RAISE_SEEN_WITHIN: u32 = 8;
/// Ticks (10 s) between probes for a grown server while sharing it: a probe
/// may make one of the others' requests wait.
const SHARED_PROBE_EVERY: u32 = 40;

#[derive(Debug, Clone)]
pub(crate) struct Gauges {
    /// Whether a queue was ever seen: until then the limit doubles.
    seen_queue: bool,
    /// Ticks in a row that grew the limit.
    streak: u32,
    /// The server's batch size, as far as known: what ran while requests
    /// waited, or more if more ran since.
    capacity: Option<f64>,
    /// Ticks left during which other clients count as present.
    others: u32,
    /// Ticks since the last probe while sharing.
    since_probe: u32,
    /// The last tick probed for room while sharing.
    probing: bool,
    /// The last raise, until it is seen on the server; forgotten when the
    /// limit is cut.
    raised_at: Option<Raise>,
}

impl Default for Gauges {
    fn default() -> Gauges {
        Gauges {
            seen_queue: false,
            streak: 0,
            capacity: None,
            others: 0,
            since_probe: 0,
            probing: false,
            // The initial limit counts as a raise from nothing: until the
            // server shows some of it, it has not seen the first requests.
            raised_at: Some(Raise {
                held: 0.0,
                growth: 1.0,
                ticks: 0,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Raise {
    /// What the server held (running and waiting) then.
    held: f64,
    /// The new limit over the old.
    growth: f64,
    /// Ticks since.
    ticks: u32,
}

/// The queue aimed for when alone: at least one request.
fn target_queue(running: f64) -> f64 {
    (running * QUEUE_SHARE).ceil().max(1.0)
}

impl Gauges {
    pub(crate) fn next(&mut self, limit: usize, obs: &Observation, load: ServerLoad) -> usize {
        let total = load.running + load.waiting;
        // Ours on the server are at most what we have in flight, or the
        // limit: anything beyond is someone else's.
        let ours = obs.in_flight.max(limit) as f64;
        self.others = if total - ours >= 1.0 {
            OTHERS_MEMORY
        } else {
            self.others.saturating_sub(1)
        };
        let grew = self.learn_capacity(load);
        match self.capacity {
            Some(capacity) if self.others > 0 => self.share(limit, obs, load, capacity, grew),
            _ => {
                self.probing = false;
                self.fill(limit, obs, load)
            }
        }
    }

    /// Updates the known batch size; whether it grew.
    fn learn_capacity(&mut self, load: ServerLoad) -> bool {
        let before = self.capacity;
        // With a queue, what runs is all that fits; without, at least that.
        if load.waiting > 0.0 || before.is_some_and(|c| load.running > c) {
            self.capacity = Some(load.running);
        }
        matches!((before, self.capacity), (Some(b), Some(c)) if c > b)
    }

    /// Alone: a full batch and a small queue.
    fn fill(&mut self, limit: usize, obs: &Observation, load: ServerLoad) -> usize {
        let total = load.running + load.waiting;
        let target = target_queue(load.running);
        if load.waiting > target {
            self.seen_queue = true;
            self.streak = 0;
            self.raised_at = None;
            return fit(limit, obs.in_flight, load, load.waiting - target);
        }
        let kv = load.kv_cache_usage.unwrap_or(0.0);
        if load.waiting >= target || !obs.saturated || kv >= KV_FULL {
            self.streak = 0;
            return limit;
        }
        if !self.raise_seen(total) {
            return limit;
        }
        let next = if !self.seen_queue && kv < KV_HIGH {
            limit.saturating_mul(slow_start_factor(load.kv_cache_usage))
        } else {
            self.grow(limit)
        };
        self.raised_at = Some(Raise {
            held: total,
            growth: next as f64 / limit.max(1) as f64,
            ticks: 0,
        });
        next
    }

    /// Whether the server shows the last raise: what it holds grew by at
    /// least half as much, relatively, as the limit did. Until then the
    /// requests the raise let through are still on their way (a busy
    /// gateway, a slow network), and a server that has not seen them yet
    /// would look like room for more. Relative, because with a long way to
    /// the server only a share of our requests are on it at any time. A
    /// raise not seen within [`RAISE_SEEN_WITHIN`] ticks no longer holds
    /// growth back (the server's load moved for other reasons).
    fn raise_seen(&mut self, total: f64) -> bool {
        let Some(raise) = self.raised_at.as_mut() else {
            return true;
        };
        raise.ticks += 1;
        let expected = raise.held * (1.0 + (raise.growth - 1.0) / 2.0);
        (total > raise.held && total >= expected) || raise.ticks > RAISE_SEEN_WITHIN
    }

    /// With others: one free place, no queue. Room beyond it is filled; a
    /// server that may have grown is probed now and then (at once again
    /// while probes keep finding room).
    fn share(
        &mut self,
        limit: usize,
        obs: &Observation,
        load: ServerLoad,
        capacity: f64,
        grew: bool,
    ) -> usize {
        let room = capacity - 1.0 - (load.running + load.waiting);
        let probed = std::mem::take(&mut self.probing);
        if room < 0.0 && !(probed && grew) {
            self.streak = 0;
            self.raised_at = None;
            self.since_probe = 0;
            return fit(limit, obs.in_flight, load, -room);
        }
        if !obs.saturated {
            return limit;
        }
        if room >= 1.0 {
            // Whole places only: `room` is a difference of counts.
            return limit.saturating_add((room as usize).min(self.step(limit)));
        }
        self.since_probe += 1;
        if (probed && grew) || self.since_probe >= SHARED_PROBE_EVERY {
            self.since_probe = 0;
            self.probing = true;
            // Two more at least: one would only take the free place, and a
            // full server looks the same whether it grew or not.
            let step = self.step(limit).max(2);
            self.streak += 1;
            return limit.saturating_add(step);
        }
        self.streak = 0;
        limit
    }

    /// limit/32 after a queue, doubling with every tick that grows again.
    fn step(&self, limit: usize) -> usize {
        let shift = FIRST_STEP_SHIFT.saturating_sub(self.streak.min(MAX_STEP_SHIFT));
        (limit >> shift).max(1)
    }

    fn grow(&mut self, limit: usize) -> usize {
        let step = self.step(limit);
        self.streak += 1;
        limit.saturating_add(step)
    }
}

/// How much the limit grows before the first queue: twice, or up to four
/// times while the KV cache shows that much room below [`KV_HIGH`] (a
/// cache a fifth full holds four times as many sequences before 80%), so a
/// large server fills in a few ticks and a nearly full one is not
/// overshot.
fn slow_start_factor(kv_cache_usage: Option<f64>) -> usize {
    match kv_cache_usage {
        // Between 2 and 4: the cast is exact.
        Some(kv) if kv > 0.0 => (KV_HIGH / kv).floor().clamp(2.0, 4.0) as usize,
        _ => 2,
    }
}

/// Our in-flight requests less our share of `excess` (the share is ours of
/// everything the server holds, so that other clients' requests are not
/// counted as ours, and several gateways on one server share the
/// correction). Never above the current limit.
fn fit(limit: usize, in_flight: usize, load: ServerLoad, excess: f64) -> usize {
    let ours = in_flight as f64;
    let total = load.running + load.waiting;
    let share = if total > 0.0 {
        (ours / total).min(1.0)
    } else {
        1.0
    };
    let fits = (ours - excess * share).floor().max(1.0);
    // `fits` is at least 1 and below `in_flight + 1`: the cast is exact.
    (fits as usize).min(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(running: f64, waiting: f64) -> ServerLoad {
        ServerLoad {
            running,
            waiting,
            kv_cache_usage: None,
        }
    }

    fn busy(in_flight: usize) -> Observation {
        Observation {
            in_flight,
            saturated: true,
            load: None,
        }
    }

    #[test]
    fn doubles_until_a_queue_then_cuts_to_what_fits() {
        let mut g = Gauges::default();
        assert_eq!(g.next(16, &busy(16), load(16.0, 0.0)), 32);
        // 100 running, 28 waiting, all ours: 100 + the target of 2 fit.
        assert_eq!(g.next(128, &busy(128), load(100.0, 28.0)), 102);
        // After a queue, growth is gentle and accelerates while it lasts.
        assert_eq!(g.next(102, &busy(102), load(100.0, 0.0)), 105);
        assert_eq!(g.next(105, &busy(105), load(105.0, 0.0)), 111);
    }

    #[test]
    fn a_raise_the_server_has_not_seen_yet_is_not_room() {
        let mut g = Gauges::default();
        assert_eq!(g.next(64, &busy(64), load(64.0, 0.0)), 128);
        // Raised to 128, but the server has seen none of the new ones yet:
        // no queue, and no reason to double again.
        assert_eq!(g.next(128, &busy(128), load(64.0, 0.0)), 128);
        assert_eq!(g.next(128, &busy(128), load(64.0, 0.0)), 128);
        // Once it holds half as much more (running and waiting), the raise
        // has arrived: growth goes on.
        assert_eq!(g.next(128, &busy(128), load(95.0, 1.0)), 256);
        // A raise that never shows holds growth back for a while only.
        let held_back = (0..RAISE_SEEN_WITHIN)
            .filter(|_| g.next(256, &busy(256), load(100.0, 0.0)) == 256)
            .count();
        assert_eq!(held_back as u32, RAISE_SEEN_WITHIN);
        assert_eq!(g.next(256, &busy(256), load(100.0, 0.0)), 512);
        // A cut forgets the raise.
        assert_eq!(g.next(512, &busy(512), load(100.0, 412.0)), 102);
        assert_eq!(g.next(102, &busy(102), load(100.0, 0.0)), 105);
    }

    #[test]
    fn an_empty_cache_speeds_up_the_first_climb() {
        let with_kv = |kv: f64| ServerLoad {
            kv_cache_usage: Some(kv),
            ..load(16.0, 0.0)
        };
        assert_eq!(Gauges::default().next(16, &busy(16), with_kv(0.03)), 64);
        assert_eq!(Gauges::default().next(16, &busy(16), with_kv(0.25)), 48);
        assert_eq!(Gauges::default().next(16, &busy(16), with_kv(0.5)), 32);
        assert_eq!(Gauges::default().next(16, &busy(16), with_kv(0.0)), 32);
    }

    #[test]
    fn only_our_share_of_a_queue_is_given_up() {
        let mut g = Gauges::default();
        // Another client holds half of what a 150-place server has: the
        // excess over 149 (one place free) is 51, of which ours is half.
        let next = g.next(100, &busy(100), load(150.0, 50.0));
        assert_eq!(next, 100 - 26);
    }

    #[test]
    fn holds_when_unused_at_target_or_with_a_full_cache() {
        let mut g = Gauges::default();
        let idle = Observation {
            in_flight: 3,
            saturated: false,
            load: None,
        };
        assert_eq!(g.next(16, &idle, load(3.0, 0.0)), 16);
        assert_eq!(g.next(16, &busy(16), load(15.0, 1.0)), 16);
        let full = ServerLoad {
            kv_cache_usage: Some(0.97),
            ..load(16.0, 0.0)
        };
        assert_eq!(g.next(16, &busy(16), full), 16);
    }

    #[test]
    fn with_others_on_the_server_one_place_stays_free() {
        let mut g = Gauges::default();
        // Alone on an 8-place server: its size is learnt from a queue.
        assert_eq!(g.next(10, &busy(10), load(8.0, 2.0)), 9);
        // Someone else's request runs too: 8 running, 8 of ours at most.
        // Ours shrink to leave one place: 8 - 1 free - 1 theirs = 6.
        assert_eq!(g.next(8, &busy(8), load(8.0, 1.0)), 6);
        assert_eq!(g.next(6, &busy(6), load(7.0, 0.0)), 6);
        // They stay remembered between their requests…
        assert_eq!(g.next(6, &busy(6), load(6.0, 0.0)), 7);
        assert_eq!(g.next(7, &busy(7), load(7.0, 0.0)), 7);
        // … until they have been gone for a while: then the queue target
        // comes back.
        let mut ticks = 0;
        while g.next(7, &busy(7), load(7.0, 0.0)) == 7 {
            ticks += 1;
        }
        // Remembered for OTHERS_MEMORY ticks since last seen, three of
        // which went by above.
        assert_eq!(ticks, OTHERS_MEMORY - 3);
    }

    #[test]
    fn sharing_probes_now_and_then_and_follows_a_grown_server() {
        let mut g = Gauges::default();
        g.next(10, &busy(10), load(8.0, 2.0));
        g.next(8, &busy(8), load(8.0, 1.0));
        let mut limit = 6;
        let mut ticks = 0;
        // At the target (6 ours + 1 theirs + 1 free) it holds, then probes.
        while limit == 6 {
            limit = g.next(6, &busy(6), load(7.0, 0.0));
            ticks += 1;
        }
        assert_eq!((ticks, limit), (SHARED_PROBE_EVERY, 8));
        // The server grew (8 + 1 run, none waits): probe again at once.
        assert_eq!(g.next(8, &busy(8), load(9.0, 0.0)), 10);
        // It did not grow further (9 run, 2 wait): back to one free place,
        // 9 - 1 free - 1 theirs.
        assert_eq!(g.next(10, &busy(10), load(9.0, 2.0)), 7);
        // Then it holds until the next probe.
        assert_eq!(g.next(7, &busy(7), load(8.0, 0.0)), 7);
    }
}
