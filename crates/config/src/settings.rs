//! `general_settings` and `batch_settings`, with their defaults.

use serde::Deserialize;

use crate::ConfigError;

/// `general_settings` (LiteLLM's section; batchgate reads the keys below and
/// ignores the rest).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(default)]
pub struct GeneralSettings {
    /// Bearer token that grants full access. Required unless the binary runs
    /// with `--insecure-no-auth`.
    pub master_key: Option<String>,
    /// Secret for the ID MAC; else env `BATCHGATE_ID_SECRET`, else a secret
    /// generated once in the data directory.
    pub id_secret: Option<String>,
    /// A PostgreSQL database for all metadata, shared by every instance
    /// that names it (LiteLLM's key); else env `DATABASE_URL` when that is
    /// a PostgreSQL URL; else (`None`) the embedded SQLite store in the data
    /// directory. Always a `postgres://`/`postgresql://` URL once loaded.
    pub database_url: Option<String>,
    /// Where file bytes live: `s3://bucket/prefix` (any S3-compatible
    /// service; credentials, region and endpoint from the standard `AWS_*`
    /// environment variables) or `file:///dir`. Else env
    /// `BATCHGATE_STORAGE_URL`, else `blobs/` in the data directory.
    pub storage_url: Option<String>,
    /// Upload size limit in MB (10^6 bytes). Default 512, as OpenAI.
    pub max_file_size_mb: u64,
    /// Default lifetime of `purpose=batch` uploads, in seconds (30 days).
    pub batch_file_expiry_seconds: u64,
}

impl Default for GeneralSettings {
    fn default() -> Self {
        GeneralSettings {
            master_key: None,
            id_secret: None,
            database_url: None,
            storage_url: None,
            max_file_size_mb: 512,
            batch_file_expiry_seconds: 30 * 24 * 3600,
        }
    }
}

impl GeneralSettings {
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_size_mb.saturating_mul(1_000_000)
    }

    /// Settles `database_url`: a value in the config must be a PostgreSQL
    /// URL; without one, `DATABASE_URL` is used if it is one (anything else
    /// there may be meant for another program and is left alone).
    pub(crate) fn resolve_database_url(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        match self.database_url.take().filter(|u| !u.trim().is_empty()) {
            Some(url) if is_postgres_url(&url) => self.database_url = Some(url),
            Some(_) => {
                return Err(ConfigError::invalid(
                    "general_settings.database_url",
                    "must be a postgres:// or postgresql:// URL (leave it unset for the \
                     embedded SQLite store)",
                ))
            }
            None => self.database_url = env("DATABASE_URL").filter(|u| is_postgres_url(u)),
        }
        Ok(())
    }
}

/// Whether `url` names a PostgreSQL database (the schemes LiteLLM's
/// `DATABASE_URL` takes).
pub fn is_postgres_url(url: &str) -> bool {
    let scheme = url
        .trim()
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    matches!(scheme.as_deref(), Some("postgres" | "postgresql"))
}

/// `batch_settings`: how the engine validates and runs batches.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(default)]
pub struct BatchSettings {
    /// Most lines an input file may hold (OpenAI: 50,000).
    pub max_lines: u64,
    /// Largest input file in MB (OpenAI: 200).
    pub max_input_mb: u64,
    /// Attempts per line before it goes to the error file.
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles each attempt, with jitter.
    pub initial_backoff_ms: u64,
    /// Ceiling of the retry delay in milliseconds.
    pub max_backoff_ms: u64,
    /// Consecutive outage-type failures (no answer, or 5xx) on one replica,
    /// across all lines, after which dispatch to it pauses until a probe
    /// finds it answering again.
    pub outage_threshold: u32,
    /// Seconds in-flight lines may still finish after a cancel.
    pub cancel_grace_seconds: u64,
    /// Seconds a graceful stop (SIGTERM) waits for in-flight upstream
    /// calls to finish and be journaled before it gives up on them (they
    /// are then sent again after the restart).
    pub shutdown_grace_seconds: u64,
    /// Accepted `completion_window` values (`"24h"`, or e.g. `"1h"`, `"30s"`).
    pub completion_windows: Vec<String>,
    /// Validation errors reported in `errors.data` at most.
    pub max_reported_errors: usize,
    /// Seconds a claimed batch stays leased to one gateway instance without
    /// a heartbeat before another may take it over.
    pub lease_seconds: u64,
    /// Lines per chunk: the unit in which gateway instances sharing a
    /// store share a batch (each takes chunks of any running batch).
    pub chunk_lines: u64,
    /// Default `max_parallel_requests` of a deployment: its fixed limit
    /// (64 when unset) or, with adaptive concurrency, its ceiling
    /// ([`BatchSettings::ADAPTIVE_CEILING`] when unset).
    pub default_max_parallel_requests: Option<usize>,
    /// Whether deployments size their concurrency to the server by default
    /// (`litellm_params.adaptive_concurrency` overrides it per deployment).
    pub adaptive_concurrency: bool,
    /// Default per-request timeout in seconds.
    pub default_timeout_seconds: f64,
    /// What a running batch does once its key or team is over budget.
    pub on_budget_exceeded: BudgetPolicy,
}

/// `batch_settings.on_budget_exceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum BudgetPolicy {
    /// Let in-flight lines finish, then put every remaining line in the
    /// error file with code `budget_exceeded` (the default: a budget is a
    /// limit).
    #[default]
    Stop,
    /// Run the batch to the end; only new uploads and batches are refused.
    Finish,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_lines: 50_000,
            max_input_mb: 200,
            max_attempts: 5,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            outage_threshold: 5,
            cancel_grace_seconds: 30,
            shutdown_grace_seconds: 30,
            completion_windows: vec!["24h".to_string()],
            max_reported_errors: 1000,
            lease_seconds: 30,
            chunk_lines: 500,
            default_max_parallel_requests: None,
            adaptive_concurrency: true,
            default_timeout_seconds: 600.0,
            on_budget_exceeded: BudgetPolicy::Stop,
        }
    }
}

impl BatchSettings {
    /// The fixed limit of a deployment that sets none, without adaptive
    /// concurrency.
    pub const FIXED_PARALLEL_REQUESTS: usize = 64;
    /// The ceiling of an adaptive deployment that sets none: above what one
    /// vLLM server runs at once on any current GPU.
    pub const ADAPTIVE_CEILING: usize = 1024;

    pub fn max_input_bytes(&self) -> u64 {
        self.max_input_mb.saturating_mul(1_000_000)
    }
}

/// `server_settings`: how the HTTP server treats connections, so that
/// silent or slow clients cannot hold the gateway's sockets.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(default)]
pub struct ServerSettings {
    /// Seconds a client has to send a request's headers: from connecting
    /// for a new connection, from the first byte of the next request on a
    /// kept-alive one. A client that sends nothing, or stops mid-header, is
    /// disconnected after this.
    pub header_read_timeout_seconds: f64,
    /// Seconds a kept-alive connection may sit idle between requests.
    pub keep_alive_timeout_seconds: f64,
    /// Most connections served at once. At the cap the gateway stops
    /// accepting (new clients wait in the listen backlog) until one closes.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_read_timeout_seconds: 30.0,
            keep_alive_timeout_seconds: 75.0,
            max_connections: 4096,
        }
    }
}

impl ServerSettings {
    /// The longest accepted timeout: a day.
    pub const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;
    /// The largest accepted `max_connections`.
    pub const MAX_CONNECTIONS: usize = 1_000_000;

    pub fn header_read_timeout(&self) -> std::time::Duration {
        seconds(self.header_read_timeout_seconds)
    }

    pub fn keep_alive_timeout(&self) -> std::time::Duration {
        seconds(self.keep_alive_timeout_seconds)
    }
}

/// A validated number of seconds as a duration (a day if out of range).
fn seconds(s: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(s).unwrap_or(std::time::Duration::from_secs(86_400))
}

/// Parses a window like `24h`, `90m`, `30s`, `2d` into seconds: ASCII
/// digits then one unit letter. Anything else (a sign, spaces, a non-ASCII
/// character, a product past `u64`) is `None`, never a panic: clients send
/// these strings (`completion_window`, `budget_duration`).
pub fn window_seconds(window: &str) -> Option<u64> {
    let unit = window.chars().last()?;
    let digits = window.strip_suffix(unit)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(scale).filter(|s| *s > 0)
}

#[cfg(test)]
mod tests {
    use super::window_seconds;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_string_parses_or_is_refused_without_panicking(s in any::<String>()) {
            if let Some(secs) = window_seconds(&s) {
                prop_assert!(secs > 0);
                prop_assert!(s.is_ascii());
            }
        }

        #[test]
        fn digits_and_a_unit_scale_exactly(n in 1u64..=1_000_000_000, unit in "[smhd]") {
            let scale = match unit.as_str() { "s" => 1, "m" => 60, "h" => 3600, _ => 86_400 };
            prop_assert_eq!(window_seconds(&format!("{n}{unit}")), Some(n * scale));
        }
    }

    #[test]
    fn odd_windows_are_refused() {
        for w in [
            "3é",
            "ñd",
            "é",
            "+5d",
            " 5d",
            "5 d",
            "-5d",
            "0d",
            "99999999999999999999d",
            "9223372036854775807d",
            "5dd",
            "5w",
            "",
        ] {
            assert_eq!(window_seconds(w), None, "{w:?}");
        }
        assert_eq!(
            window_seconds("9223372036854775807s"),
            Some(9_223_372_036_854_775_807)
        );
    }
}
