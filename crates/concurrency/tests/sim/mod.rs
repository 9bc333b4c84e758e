//! A simulated continuous-batching server and its clients, in simulated
//! time: deterministic, no clock, no sleeps.
//!
//! The server runs up to `capacity` requests at once, queues the rest in
//! arrival order, and runs each for `latency × (1 + slowdown × running /
//! capacity)` (`running` counted when it starts), times a seeded noise
//! factor. Clients are either adaptive (a [`Controller`] with an endless
//! backlog) or fixed (a closed loop keeping N requests outstanding: another
//! tenant). Requests and answers each take some time on the wire.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use batchgate_concurrency::{Controller, Observation, Sample, ServerLoad, Settings};

/// The server.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub capacity: usize,
    pub latency: Duration,
    pub slowdown: f64,
    /// Each run time is scaled by a uniform factor in `1 ± noise`.
    pub noise: f64,
    /// From a client to the server (the wire, or a busy client)…
    pub to_server: Duration,
    /// … and back.
    pub to_client: Duration,
}

impl Spec {
    pub fn new(capacity: usize, latency_ms: u64) -> Spec {
        Spec {
            capacity,
            latency: Duration::from_millis(latency_ms),
            slowdown: 0.2,
            noise: 0.1,
            to_server: Duration::from_micros(500),
            to_client: Duration::from_micros(500),
        }
    }

    /// Completions per second at a full batch: the capacity-bound ideal.
    pub fn ideal(&self) -> f64 {
        self.capacity as f64 / (self.latency.as_secs_f64() * (1.0 + self.slowdown))
    }
}

/// Whether adaptive clients see the server's gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Gauges,
    Latency,
}

/// Time averages over a measured stretch.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Completions per second, all clients.
    pub throughput: f64,
    pub avg_waiting: f64,
    pub avg_running: f64,
    /// The longest queue seen.
    pub max_waiting: usize,
    /// The limit of adaptive client 0, time-averaged.
    pub avg_limit: f64,
    /// Its limit at the end.
    pub limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Req {
    client: usize,
    sent: u64,
    epoch: u64,
    concurrency: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrive(Req),
    Finish(Req),
    Receive(Req),
    Tick,
}

#[derive(Debug)]
struct Client {
    ctl: Option<Controller>,
    /// For a fixed client: requests kept outstanding.
    fixed: usize,
    in_flight: usize,
    saturated: bool,
    /// Latencies of a fixed client's requests, in seconds.
    latencies: Vec<f64>,
}

impl Client {
    fn limit(&self) -> usize {
        self.ctl.as_ref().map_or(self.fixed, Controller::limit)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Acc {
    start: u64,
    waiting: f64,
    running: f64,
    limit: f64,
    completed: u64,
    max_waiting: usize,
}

const TICK: u64 = 250_000_000;

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

#[derive(Debug)]
pub struct Sim {
    now: u64,
    seq: u64,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    spec: Spec,
    feed: Feed,
    running: usize,
    waiting: VecDeque<Req>,
    clients: Vec<Client>,
    rng: u64,
    acc: Acc,
}

impl Sim {
    /// A server and one adaptive client (client 0).
    pub fn new(spec: Spec, feed: Feed, settings: Settings, seed: u64) -> Sim {
        let mut sim = Sim::without_clients(spec, feed, seed);
        sim.add_adaptive(settings);
        sim
    }

    /// A server and no client yet.
    pub fn without_clients(spec: Spec, feed: Feed, seed: u64) -> Sim {
        let mut sim = Sim {
            now: 0,
            seq: 0,
            events: BinaryHeap::new(),
            spec,
            feed,
            running: 0,
            waiting: VecDeque::new(),
            clients: Vec::new(),
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            acc: Acc::default(),
        };
        sim.at(0, Event::Tick);
        sim
    }

    /// Another adaptive client (another gateway); returns its index.
    pub fn add_adaptive(&mut self, settings: Settings) -> usize {
        self.clients.push(Client {
            ctl: Some(Controller::new(settings)),
            fixed: 0,
            in_flight: 0,
            saturated: false,
            latencies: Vec::new(),
        });
        let i = self.clients.len() - 1;
        self.fill(i);
        i
    }

    /// Another tenant keeping `n` requests outstanding; returns its index.
    pub fn add_fixed(&mut self, n: usize) -> usize {
        self.clients.push(Client {
            ctl: None,
            fixed: n,
            in_flight: 0,
            saturated: false,
            latencies: Vec::new(),
        });
        let i = self.clients.len() - 1;
        self.fill(i);
        i
    }

    pub fn set_fixed(&mut self, client: usize, n: usize) {
        self.clients[client].fixed = n;
        self.fill(client);
    }

    /// The server now runs `capacity` at once (running requests beyond it
    /// finish; none is preempted).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.spec.capacity = capacity;
        self.admit();
    }

    pub fn limit(&self, client: usize) -> usize {
        self.clients[client].limit()
    }

    /// The 99th percentile of a fixed client's latencies since the last
    /// call, in seconds (and forgets them).
    pub fn take_p99(&mut self, client: usize) -> f64 {
        let mut l = std::mem::take(&mut self.clients[client].latencies);
        l.sort_by(f64::total_cmp);
        let i = (l.len() * 99).div_ceil(100).saturating_sub(1);
        l.get(i).copied().unwrap_or(f64::NAN)
    }

    /// Runs for `d` of simulated time.
    pub fn run(&mut self, d: Duration) {
        let end = self.now + d.as_nanos() as u64;
        while let Some(Reverse((t, _, _))) = self.events.peek() {
            if *t > end {
                break;
            }
            let Some(Reverse((t, _, ev))) = self.events.pop() else {
                break;
            };
            self.advance(t);
            self.handle(ev);
        }
        self.advance(end);
    }

    /// Runs for `d` and returns its time averages.
    pub fn measure(&mut self, d: Duration) -> Measured {
        self.acc = Acc {
            start: self.now,
            ..Acc::default()
        };
        self.run(d);
        let secs = (self.now - self.acc.start) as f64 / 1e9;
        Measured {
            throughput: self.acc.completed as f64 / secs,
            avg_waiting: self.acc.waiting / secs,
            avg_running: self.acc.running / secs,
            avg_limit: self.acc.limit / secs,
            max_waiting: self.acc.max_waiting,
            limit: self.clients.first().map_or(0, Client::limit),
        }
    }

    fn at(&mut self, t: u64, ev: Event) {
        self.seq += 1;
        self.events.push(Reverse((t, self.seq, ev)));
    }

    fn advance(&mut self, t: u64) {
        let dt = t.saturating_sub(self.now) as f64 / 1e9;
        self.acc.waiting += self.waiting.len() as f64 * dt;
        self.acc.running += self.running as f64 * dt;
        self.acc.limit += self.clients.first().map_or(0, Client::limit) as f64 * dt;
        self.now = self.now.max(t);
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Arrive(r) => {
                self.waiting.push_back(r);
                self.admit();
                self.acc.max_waiting = self.acc.max_waiting.max(self.waiting.len());
            }
            Event::Finish(r) => {
                self.running -= 1;
                self.acc.completed += 1;
                self.at(self.now + nanos(self.spec.to_client), Event::Receive(r));
                self.admit();
            }
            Event::Receive(r) => self.receive(r),
            Event::Tick => self.tick(),
        }
    }

    fn admit(&mut self) {
        while self.running < self.spec.capacity {
            let Some(r) = self.waiting.pop_front() else {
                return;
            };
            self.running += 1;
            let fill = self.running as f64 / self.spec.capacity as f64;
            let noise = 1.0 + self.spec.noise * (2.0 * self.uniform() - 1.0);
            let secs = self.spec.latency.as_secs_f64() * (1.0 + self.spec.slowdown * fill) * noise;
            let end = self.now + (secs * 1e9) as u64;
            self.at(end, Event::Finish(r));
        }
    }

    fn receive(&mut self, r: Req) {
        let now = self.now;
        let c = &mut self.clients[r.client];
        c.in_flight -= 1;
        match c.ctl.as_mut() {
            Some(ctl) => ctl.on_answer(Sample {
                epoch: r.epoch,
                latency: Duration::from_nanos(now - r.sent),
                concurrency: r.concurrency,
            }),
            None => c.latencies.push((now - r.sent) as f64 / 1e9),
        }
        self.fill(r.client);
    }

    /// Sends what the client's limit allows.
    fn fill(&mut self, i: usize) {
        loop {
            let c = &mut self.clients[i];
            let limit = c.limit();
            if c.in_flight >= limit {
                c.saturated = true;
                return;
            }
            c.in_flight += 1;
            let req = Req {
                client: i,
                sent: self.now,
                epoch: c.ctl.as_ref().map_or(0, Controller::epoch),
                concurrency: c.in_flight,
            };
            self.at(self.now + nanos(self.spec.to_server), Event::Arrive(req));
        }
    }

    fn tick(&mut self) {
        let load = ServerLoad {
            running: self.running as f64,
            waiting: self.waiting.len() as f64,
            kv_cache_usage: Some((self.running as f64 / self.spec.capacity as f64).min(1.0)),
        };
        let now = Duration::from_nanos(self.now);
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            let Some(ctl) = c.ctl.as_mut() else {
                continue;
            };
            let obs = Observation {
                in_flight: c.in_flight,
                saturated: c.saturated,
                load: (self.feed == Feed::Gauges).then_some(load),
            };
            let limit = ctl.tick(now, obs);
            c.saturated = c.in_flight >= limit;
            self.fill(i);
        }
        self.at(self.now + TICK, Event::Tick);
    }

    fn uniform(&mut self) -> f64 {
        self.rng = self
            .rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}
