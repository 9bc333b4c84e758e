//! The YAML as written, before validation. Unknown keys are kept or ignored,
//! never rejected: LiteLLM configs carry many settings batchgate does not use.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::{BatchSettings, ConfigError, GeneralSettings, ServerSettings};

#[derive(Debug, Deserialize)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub model_list: Vec<RawModel>,
    #[serde(default)]
    pub general_settings: GeneralSettings,
    #[serde(default)]
    pub batch_settings: BatchSettings,
    #[serde(default)]
    pub server_settings: ServerSettings,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawModel {
    pub model_name: String,
    pub litellm_params: RawParams,
    #[serde(default)]
    pub model_info: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawParams {
    pub model: String,
    #[serde(default)]
    pub api_base: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub max_parallel_requests: Option<usize>,
    #[serde(default)]
    pub adaptive_concurrency: Option<bool>,
    #[serde(default)]
    pub batch_priority: Option<i64>,
    /// Seconds.
    #[serde(default)]
    pub timeout: Option<f64>,
    #[serde(default)]
    pub batch_api: Option<batchgate_core::BatchApiMode>,
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Parses YAML, replaces every `os.environ/NAME` string with the variable's
/// value, then deserializes, reporting type errors by field path.
pub(crate) fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RawConfig, ConfigError> {
    let mut value: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| ConfigError::invalid("config", format!("not valid YAML: {e}")))?;
    if value.is_null() {
        value = Value::Object(Default::default());
    }
    resolve_env(&mut value, "", env)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::invalid(
            if path == "." { "config".into() } else { path },
            e.into_inner().to_string(),
        )
    })
}

fn resolve_env(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("os.environ/") {
                let resolved = env(name).ok_or_else(|| {
                    ConfigError::invalid(
                        path,
                        format!("environment variable {name} is not set (os.environ/{name})"),
                    )
                })?;
                *s = resolved;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve_env(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                resolve_env(v, &child, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}
