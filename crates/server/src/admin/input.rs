//! Admin request bodies, read field by field from the JSON value so that
//! every wrong type, size or range is a 400 naming its field (`param`)
//! instead of a generic parse error — or a stored value that later breaks
//! arithmetic. Keys batchgate does not use are ignored (LiteLLM clients send
//! many); a `null` field counts as absent.

use batchgate_config::window_seconds;
use batchgate_core::ApiError;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// The longest `budget_duration`: ten years. Longer periods mean nothing
/// for a budget, and the bound keeps `now + period` far from overflow.
pub const MAX_BUDGET_SECONDS: i64 = 3650 * 86_400;
/// The largest `max_budget`, in USD.
pub const MAX_BUDGET_USD: i64 = 1_000_000_000_000;
/// Longest ID, alias or model name, in characters.
const MAX_NAME_CHARS: usize = 256;
/// Longest key value (custom keys and keys named in update/info/delete).
const MAX_KEY_CHARS: usize = 1024;
/// Shortest custom key.
const MIN_KEY_CHARS: usize = 8;
/// Most entries of `models` and of `keys` (delete).
const MAX_LIST_LEN: usize = 1000;
/// Largest `metadata`, serialized.
const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Deepest nesting of `metadata` (an object holding a scalar is depth 1).
const MAX_METADATA_DEPTH: usize = 16;
/// How much of a refused value an error message echoes.
const ECHO_CHARS: usize = 40;

/// A budget period: as written, and in seconds (`1..=MAX_BUDGET_SECONDS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub duration: String,
    pub seconds: i64,
}

/// The fields of `/key/generate` and `/key/update`.
#[derive(Debug, Default)]
pub struct KeyInput {
    pub key: Option<String>,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub models: Option<Vec<String>>,
    pub max_budget: Option<Decimal>,
    pub budget: Option<Period>,
    pub metadata: Option<Value>,
    pub blocked: Option<bool>,
}

impl KeyInput {
    pub fn parse(body: Value) -> Result<KeyInput, ApiError> {
        let f = Fields::of(body)?;
        Ok(KeyInput {
            key: f.text("key", 1, MAX_KEY_CHARS)?,
            key_alias: f.text("key_alias", 0, MAX_NAME_CHARS)?,
            team_id: f.text("team_id", 1, MAX_NAME_CHARS)?,
            models: f.models()?,
            max_budget: f.budget()?,
            budget: f.period()?,
            metadata: f.metadata()?,
            blocked: f.flag("blocked")?,
        })
    }

    /// `key` as a new custom key: long enough, sendable as a bearer token,
    /// and not shaped like a key id (`key_…`), which lookups would take for
    /// an id and never find.
    pub fn custom_key(&self) -> Result<Option<String>, ApiError> {
        match &self.key {
            Some(k) if k.chars().count() < MIN_KEY_CHARS => Err(ApiError::invalid_request(
                format!("A custom key must be at least {MIN_KEY_CHARS} characters."),
            )
            .with_param("key")),
            // A client presents a key in an HTTP header, trimmed: only
            // visible ASCII survives that unchanged.
            Some(k) if !k.bytes().all(|b| b.is_ascii_graphic()) => Err(ApiError::invalid_request(
                "A custom key may hold only visible ASCII characters (no spaces).",
            )
            .with_param("key")),
            Some(k) if k.starts_with("key_") => Err(ApiError::invalid_request(
                "A custom key must not start with 'key_' (that is how key ids are written).",
            )
            .with_param("key")),
            other => Ok(other.clone()),
        }
    }
}

/// The fields of `/team/new` and `/team/update`.
#[derive(Debug, Default)]
pub struct TeamInput {
    pub team_id: Option<String>,
    pub team_alias: Option<String>,
    pub max_budget: Option<Decimal>,
    pub budget: Option<Period>,
}

impl TeamInput {
    pub fn parse(body: Value) -> Result<TeamInput, ApiError> {
        let f = Fields::of(body)?;
        Ok(TeamInput {
            team_id: f.text("team_id", 1, MAX_NAME_CHARS)?,
            team_alias: f.text("team_alias", 0, MAX_NAME_CHARS)?,
            max_budget: f.budget()?,
            budget: f.period()?,
        })
    }
}

/// `keys` of `/key/delete`: a list of key values or `key_…` ids.
/// The `key` of `/key/block` and `/key/unblock`: a key's value or its
/// `key_…` id.
pub fn key_of(body: Value) -> Result<String, ApiError> {
    Fields::of(body)?
        .text("key", 1, MAX_KEY_CHARS)?
        .ok_or_else(|| ApiError::invalid_request("Missing 'key'.").with_param("key"))
}

pub fn delete_keys(body: Value) -> Result<Vec<String>, ApiError> {
    let f = Fields::of(body)?;
    f.list("keys", MAX_KEY_CHARS)?
        .ok_or_else(|| ApiError::invalid_request("Missing 'keys'.").with_param("keys"))
}

/// `budget_duration` in seconds: digits and a unit (`30s`, `30m`, `24h`,
/// `30d`), from one second to ten years.
pub fn period_seconds(duration: &str) -> Result<i64, ApiError> {
    let seconds = window_seconds(duration).ok_or_else(|| {
        ApiError::invalid_request(format!(
            "budget_duration '{}' is not like 30s, 30m, 24h or 30d.",
            echo(duration)
        ))
        .with_param("budget_duration")
    })?;
    i64::try_from(seconds)
        .ok()
        .filter(|s| *s <= MAX_BUDGET_SECONDS)
        .ok_or_else(|| {
            ApiError::invalid_request(format!(
                "budget_duration '{}' is longer than the limit of {}d (10 years).",
                echo(duration),
                MAX_BUDGET_SECONDS / 86_400
            ))
            .with_param("budget_duration")
        })
}

/// `max_budget`: a JSON number or numeric string, exact, from 0 to
/// [`MAX_BUDGET_USD`].
pub fn budget_amount(v: &Value) -> Result<Decimal, ApiError> {
    let bad =
        |m: String| ApiError::invalid_request(format!("max_budget {m}")).with_param("max_budget");
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.len() <= 64 => s.trim().to_string(),
        Value::String(s) => return Err(bad(format!("'{}…' is not a number.", echo(s)))),
        other => return Err(bad(format!("must be a number, got {}.", kind(other)))),
    };
    let d = batchgate_cost::decimal_of(&Value::String(text.clone()))
        .map_err(|_| bad(format!("'{}' is not a finite decimal number.", echo(&text))))?;
    if d < Decimal::ZERO || d > Decimal::from(MAX_BUDGET_USD) {
        return Err(bad(format!(
            "must be from 0 to {MAX_BUDGET_USD}, got {}.",
            echo(&text)
        )));
    }
    Ok(d)
}

/// The body as an object of fields.
struct Fields(Map<String, Value>);

impl Fields {
    fn of(body: Value) -> Result<Fields, ApiError> {
        match body {
            Value::Object(map) => Ok(Fields(map)),
            other => Err(ApiError::invalid_request(format!(
                "The request body must be a JSON object, got {}.",
                kind(&other)
            ))),
        }
    }

    /// The field, unless absent or `null`.
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// `true` or `false`.
    fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name)
            .map(|v| {
                v.as_bool().ok_or_else(|| {
                    ApiError::invalid_request(format!(
                        "{name} must be true or false, got {}.",
                        kind(v)
                    ))
                    .with_param(name)
                })
            })
            .transpose()
    }

    /// A string of `min..=max` characters without control characters.
    fn text(&self, name: &str, min: usize, max: usize) -> Result<Option<String>, ApiError> {
        self.get(name)
            .map(|v| checked_text(name, v, min, max))
            .transpose()
    }

    /// A list of at most [`MAX_LIST_LEN`] non-empty strings.
    fn list(&self, name: &str, max_chars: usize) -> Result<Option<Vec<String>>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let items = v.as_array().ok_or_else(|| {
            ApiError::invalid_request(format!(
                "{name} must be a list of strings, got {}.",
                kind(v)
            ))
            .with_param(name)
        })?;
        if items.len() > MAX_LIST_LEN {
            return Err(ApiError::invalid_request(format!(
                "{name} has {} entries; the limit is {MAX_LIST_LEN}.",
                items.len()
            ))
            .with_param(name));
        }
        items
            .iter()
            .map(|item| checked_text(name, item, 1, max_chars))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn models(&self) -> Result<Option<Vec<String>>, ApiError> {
        self.list("models", MAX_NAME_CHARS)
    }

    fn budget(&self) -> Result<Option<Decimal>, ApiError> {
        self.get("max_budget").map(budget_amount).transpose()
    }

    fn period(&self) -> Result<Option<Period>, ApiError> {
        let Some(v) = self.get("budget_duration") else {
            return Ok(None);
        };
        let Value::String(duration) = v else {
            return Err(ApiError::invalid_request(format!(
                "budget_duration must be a string like 30d, got {}.",
                kind(v)
            ))
            .with_param("budget_duration"));
        };
        let seconds = period_seconds(duration)?;
        Ok(Some(Period {
            duration: duration.clone(),
            seconds,
        }))
    }

    /// An object of bounded size and depth.
    fn metadata(&self) -> Result<Option<Value>, ApiError> {
        let Some(v) = self.get("metadata") else {
            return Ok(None);
        };
        let bad = |m: String| ApiError::invalid_request(m).with_param("metadata");
        if !v.is_object() {
            return Err(bad(format!("metadata must be an object, got {}.", kind(v))));
        }
        if depth(v) > MAX_METADATA_DEPTH {
            return Err(bad(format!(
                "metadata is nested deeper than {MAX_METADATA_DEPTH} levels."
            )));
        }
        let size = serde_json::to_string(v).map_or(usize::MAX, |s| s.len());
        if size > MAX_METADATA_BYTES {
            return Err(bad(format!(
                "metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}."
            )));
        }
        Ok(Some(v.clone()))
    }
}

fn checked_text(name: &str, v: &Value, min: usize, max: usize) -> Result<String, ApiError> {
    let bad = |m: String| ApiError::invalid_request(m).with_param(name);
    let Value::String(s) = v else {
        return Err(bad(format!("{name} must be a string, got {}.", kind(v))));
    };
    let chars = s.chars().count();
    if chars < min {
        return Err(bad(format!("{name} must not be empty.")));
    }
    if chars > max {
        return Err(bad(format!(
            "{name} is {chars} characters long; the limit is {max}."
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(format!("{name} must not contain control characters.")));
    }
    Ok(s.clone())
}

/// Nesting depth of a JSON value (a scalar is 0). Iterative, so a hostile
/// value cannot exhaust the stack here.
fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

/// A JSON type's name, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The start of a refused value, for messages (never a huge echo).
fn echo(s: &str) -> String {
    s.chars().take(ECHO_CHARS).collect()
}

#[cfg(test)]
mod tests;
