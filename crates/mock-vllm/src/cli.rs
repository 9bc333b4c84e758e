//! The `mock-vllm` command line.

use std::net::IpAddr;
use std::time::Duration;

use batchgate_mock_vllm::{Faults, MockConfig, SchedulingPolicy, DEFAULT_MODEL, DEFAULT_SLOWDOWN};
use clap::Parser;

/// A stand-in for `vllm serve` with latency and fault injection.
#[derive(Debug, Parser)]
#[command(name = "mock-vllm", version)]
pub struct Cli {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to bind (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Served model name; repeat for several.
    #[arg(long = "model", default_value = DEFAULT_MODEL)]
    models: Vec<String>,
    /// Require `Authorization: Bearer <KEY>` on /v1/*.
    #[arg(long)]
    api_key: Option<String>,
    /// Delay added before answering each inference request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fraction of requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Fraction of requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// `Retry-After` seconds on injected 429s.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// Fraction of requests whose connection is closed without a response.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Fraction of requests never answered.
    #[arg(long, default_value_t = 0.0)]
    hang_rate: f64,
    /// Answer 500 to the first N attempts of each distinct request body.
    #[arg(long, default_value_t = 0)]
    fail_first_n: u32,
    /// Seed for the fault RNG.
    #[arg(long)]
    seed: Option<u64>,
    /// Sequences run at once (continuous batching); more requests wait and
    /// show in `vllm:num_requests_waiting`. Unbounded when not given.
    #[arg(long)]
    capacity: Option<usize>,
    /// How waiting requests are ordered: `fcfs`, or `priority` (the
    /// request field `priority`, lower first), like vLLM's flag.
    #[arg(long, value_enum, default_value = "fcfs")]
    scheduling_policy: Policy,
    /// With `--capacity`: how much longer a request takes in a full batch
    /// (0.2 = 20%), growing linearly with the number running.
    #[arg(long, default_value_t = DEFAULT_SLOWDOWN)]
    slowdown: f64,
}

/// `--scheduling-policy`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Policy {
    Fcfs,
    Priority,
}

impl Cli {
    pub fn config(&self) -> MockConfig {
        MockConfig {
            models: self.models.clone(),
            api_key: self.api_key.clone(),
            latency: Duration::from_millis(self.latency_ms),
            faults: Faults {
                fail_rate: self.fail_rate,
                rate_limit_rate: self.rate_limit_rate,
                retry_after_secs: self.retry_after_secs,
                drop_rate: self.drop_rate,
                hang_rate: self.hang_rate,
                fail_first_n: self.fail_first_n,
            },
            seed: self.seed,
            capacity: self.capacity,
            scheduling: match self.scheduling_policy {
                Policy::Fcfs => SchedulingPolicy::Fcfs,
                Policy::Priority => SchedulingPolicy::Priority,
            },
            slowdown: self.slowdown,
        }
    }
}
