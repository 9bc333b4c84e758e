//! The limit from the server's own gauges (running, waiting, KV cache).

use crate::{Observation, ServerLoad};

/// The queue left standing on purpose, as a share of the running batch: a
/// waiting request takes a freed place at the server's next step, where
/// one sent only once a place is free arrives a round trip late and the
/// place idles meanwhile (on a small, fast server that costs several
/// percent of throughput).
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

#[derive(Debug, Clone, Default)]
pub(crate) struct Gauges {
    /// Whether a queue was ever seen: until then the limit doubles.
    seen_queue: bool,
    /// Ticks in a row that grew the limit.
    streak: u32,
}

/// The queue aimed for: at least one request.
fn target_queue(running: f64) -> f64 {
    (running * QUEUE_SHARE).ceil().max(1.0)
}

impl Gauges {
    pub(crate) fn next(&mut self, limit: usize, obs: &Observation, load: ServerLoad) -> usize {
        let target = target_queue(load.running);
        if load.waiting > target {
            self.seen_queue = true;
            self.streak = 0;
            return fit(limit, obs.in_flight, load, target);
        }
        let kv = load.kv_cache_usage.unwrap_or(0.0);
        if load.waiting >= target || !obs.saturated || kv >= KV_FULL {
            self.streak = 0;
            return limit;
        }
        if !self.seen_queue && kv < KV_HIGH {
            return limit.saturating_mul(2);
        }
        let shift = FIRST_STEP_SHIFT.saturating_sub(self.streak.min(MAX_STEP_SHIFT));
        let step = (limit >> shift).max(1);
        self.streak += 1;
        limit.saturating_add(step)
    }
}

/// What fits when the server queues more than `target`: our in-flight
/// requests less our share of the excess (the share is ours of everything
/// the server holds, so that other clients' requests are not counted as
/// ours, and several gateways on one server share the correction). Never
/// above the current limit.
fn fit(limit: usize, in_flight: usize, load: ServerLoad, target: f64) -> usize {
    let ours = in_flight as f64;
    let total = load.running + load.waiting;
    let share = if total > 0.0 {
        (ours / total).min(1.0)
    } else {
        1.0
    };
    let excess = (load.waiting - target) * share;
    let fits = (ours - excess).floor().max(1.0);
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
        assert_eq!(g.next(105, &busy(105), load(100.0, 0.0)), 111);
    }

    #[test]
    fn only_our_share_of_a_queue_is_given_up() {
        let mut g = Gauges::default();
        // Another client holds half of what the server has.
        let next = g.next(100, &busy(100), load(150.0, 50.0));
        assert_eq!(next, 100 - 24);
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
}
