//! The validated configuration.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use batchgate_core::Deployment;
use sha2::{Digest, Sha256};

use crate::raw::{self, RawModel};
use crate::{window_seconds, BatchSettings, ConfigError, GeneralSettings, ServerSettings};

/// Batch endpoints a vLLM deployment serves unless `litellm_params.endpoints`
/// narrows them: OpenAI's batch endpoints that vLLM serves (the Responses
/// API included), plus vLLM's own score and rerank.
pub const DEFAULT_ENDPOINTS: [&str; 6] = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/score",
    "/v1/rerank",
];

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub deployments: Vec<Deployment>,
    pub general: GeneralSettings,
    pub batch: BatchSettings,
    pub server: ServerSettings,
}

impl Config {
    /// Reads and validates a config file. `providers` lists the provider
    /// prefixes that are registered (`hosted_vllm`, ...).
    pub fn load(path: &Path, providers: &[&str]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::from_yaml(&text, providers, &|name| std::env::var(name).ok())
    }

    /// Validates YAML text; `env` resolves `os.environ/NAME` and the
    /// `HOSTED_VLLM_API_BASE`/`HOSTED_VLLM_API_KEY` fallbacks.
    pub fn from_yaml(
        text: &str,
        providers: &[&str],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = raw::parse(text, env)?;
        let mut deployments = Vec::with_capacity(raw.model_list.len());
        let mut ids = BTreeSet::new();
        for (i, model) in raw.model_list.into_iter().enumerate() {
            let d = deployment(i, model, providers, env, &raw.batch_settings)?;
            if !ids.insert(d.id.clone()) {
                return Err(ConfigError::invalid(
                    format!("model_list[{i}]"),
                    format!("duplicate deployment (model_info.id or same model_name, model and api_base): {}", d.id),
                ));
            }
            deployments.push(d);
        }
        if raw.general_settings.max_file_size_mb == 0 {
            return Err(ConfigError::invalid(
                "general_settings.max_file_size_mb",
                "must be at least 1",
            ));
        }
        for (i, w) in raw.batch_settings.completion_windows.iter().enumerate() {
            if window_seconds(w).is_none() {
                return Err(ConfigError::invalid(
                    format!("batch_settings.completion_windows[{i}]"),
                    format!("\"{w}\" is not a duration like 24h, 90m or 30s"),
                ));
            }
        }
        if raw.batch_settings.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "batch_settings.max_attempts",
                "must be at least 1",
            ));
        }
        if raw.batch_settings.default_max_parallel_requests == Some(0) {
            return Err(ConfigError::invalid(
                "batch_settings.default_max_parallel_requests",
                "must be at least 1",
            ));
        }
        if raw.batch_settings.outage_threshold == 0 {
            return Err(ConfigError::invalid(
                "batch_settings.outage_threshold",
                "must be at least 1",
            ));
        }
        check_server(&raw.server_settings)?;
        let mut general = raw.general_settings;
        general.resolve_database_url(env)?;
        Ok(Config {
            deployments,
            general,
            batch: raw.batch_settings,
            server: raw.server_settings,
        })
    }
}

/// Timeouts must be positive and at most a day; the connection cap from 1
/// to [`ServerSettings::MAX_CONNECTIONS`].
fn check_server(s: &ServerSettings) -> Result<(), ConfigError> {
    for (field, v) in [
        ("header_read_timeout_seconds", s.header_read_timeout_seconds),
        ("keep_alive_timeout_seconds", s.keep_alive_timeout_seconds),
    ] {
        if !(v > 0.0 && v <= ServerSettings::MAX_TIMEOUT_SECONDS) {
            return Err(ConfigError::invalid(
                format!("server_settings.{field}"),
                format!(
                    "must be more than 0 and at most {} seconds, got {v}",
                    ServerSettings::MAX_TIMEOUT_SECONDS
                ),
            ));
        }
    }
    if !(1..=ServerSettings::MAX_CONNECTIONS).contains(&s.max_connections) {
        return Err(ConfigError::invalid(
            "server_settings.max_connections",
            format!(
                "must be from 1 to {}, got {}",
                ServerSettings::MAX_CONNECTIONS,
                s.max_connections
            ),
        ));
    }
    Ok(())
}

fn deployment(
    i: usize,
    raw: RawModel,
    providers: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
    batch: &BatchSettings,
) -> Result<Deployment, ConfigError> {
    let at = |field: &str| format!("model_list[{i}].{field}");
    if raw.model_name.trim().is_empty() {
        return Err(ConfigError::invalid(at("model_name"), "must not be empty"));
    }
    let mut params = raw.litellm_params;
    let (provider, served) = params.model.split_once('/').ok_or_else(|| {
        ConfigError::invalid(
            at("litellm_params.model"),
            format!(
                "\"{}\" must be <provider>/<model>, e.g. hosted_vllm/meta-llama/Llama-2-7b-chat-hf",
                params.model
            ),
        )
    })?;
    if !providers.contains(&provider) {
        return Err(ConfigError::invalid(
            at("litellm_params.model"),
            format!(
                "unknown provider \"{provider}\" (known: {})",
                providers.join(", ")
            ),
        ));
    }
    if served.is_empty() {
        return Err(ConfigError::invalid(
            at("litellm_params.model"),
            "model name after the provider is empty",
        ));
    }
    let (api_base, api_key) = connection(
        &at,
        provider,
        params.api_base.take(),
        params.api_key.take(),
        env,
    )?;
    let adaptive_concurrency = params
        .adaptive_concurrency
        .unwrap_or(batch.adaptive_concurrency);
    let unset = if adaptive_concurrency {
        BatchSettings::ADAPTIVE_CEILING
    } else {
        BatchSettings::FIXED_PARALLEL_REQUESTS
    };
    let max_parallel_requests = params
        .max_parallel_requests
        .or(batch.default_max_parallel_requests)
        .unwrap_or(unset);
    if max_parallel_requests == 0 {
        return Err(ConfigError::invalid(
            at("litellm_params.max_parallel_requests"),
            "must be at least 1",
        ));
    }
    let timeout = params.timeout.unwrap_or(batch.default_timeout_seconds);
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(ConfigError::invalid(
            at("litellm_params.timeout"),
            "must be a positive number of seconds",
        ));
    }
    let endpoints = endpoints(&at, params.endpoints.take())?;
    let id = match raw.model_info.get("id").and_then(|v| v.as_str()) {
        Some(id) => id.to_string(),
        None => derived_id(&raw.model_name, &params.model, &api_base),
    };
    Ok(Deployment {
        id,
        model_name: raw.model_name,
        provider: provider.to_string(),
        served_model: served.to_string(),
        api_base,
        api_key,
        max_parallel_requests,
        adaptive_concurrency,
        batch_priority: params.batch_priority,
        timeout: Duration::from_secs_f64(timeout),
        batch_api: params.batch_api.unwrap_or_default(),
        endpoints,
        extra_params: params.extra,
        model_info: raw.model_info,
    })
}

/// `api_base` (normalized) and `api_key`, from the entry or from the
/// provider's environment variables (`<PROVIDER>_API_BASE`, `_API_KEY`).
fn connection(
    at: &dyn Fn(&str) -> String,
    provider: &str,
    api_base: Option<String>,
    api_key: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Option<String>), ConfigError> {
    let env_prefix = provider.to_ascii_uppercase();
    let api_base = api_base
        .or_else(|| env(&format!("{env_prefix}_API_BASE")))
        .ok_or_else(|| {
            ConfigError::invalid(
                at("litellm_params.api_base"),
                format!("missing (set it, or the environment variable {env_prefix}_API_BASE)"),
            )
        })?;
    let api_base = normalize_api_base(&api_base).ok_or_else(|| {
        ConfigError::invalid(
            at("litellm_params.api_base"),
            format!("\"{api_base}\" is not an http(s) URL"),
        )
    })?;
    let api_key = api_key
        .or_else(|| env(&format!("{env_prefix}_API_KEY")))
        .filter(|k| !k.is_empty());
    Ok((api_base, api_key))
}

/// The batch endpoints a deployment serves: the listed ones, each known,
/// or all of them.
fn endpoints(
    at: &dyn Fn(&str) -> String,
    listed: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    Ok(match listed {
        Some(list) => {
            for (j, e) in list.iter().enumerate() {
                if !DEFAULT_ENDPOINTS.contains(&e.as_str()) {
                    return Err(ConfigError::invalid(
                        at(&format!("litellm_params.endpoints[{j}]")),
                        format!(
                            "unsupported endpoint \"{e}\" (supported: {})",
                            DEFAULT_ENDPOINTS.join(", ")
                        ),
                    ));
                }
            }
            list
        }
        None => DEFAULT_ENDPOINTS.iter().map(|e| e.to_string()).collect(),
    })
}

/// `http://h:8000`, `http://h:8000/`, `http://h:8000/v1` and `.../v1/` all
/// mean the same server.
fn normalize_api_base(base: &str) -> Option<String> {
    let trimmed = base.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))?;
    (!rest.is_empty()).then(|| trimmed.to_string())
}

fn derived_id(model_name: &str, model: &str, api_base: &str) -> String {
    let digest = Sha256::digest(format!("{model_name}\n{model}\n{api_base}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
