//! Per-token prices of one deployment.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::{LineCost, Tokens};

/// `model_info` key overriding the batch multiplier of a deployment.
pub const BATCH_MULTIPLIER_KEY: &str = "batch_cost_multiplier";

/// Batch lines cost half the regular price when no batch price is set —
/// OpenAI's and LiteLLM's rule.
pub const DEFAULT_BATCH_MULTIPLIER: Decimal = Decimal::from_parts(5, 0, 0, false, 1);

/// Prices per token, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prices {
    pub input: Option<Decimal>,
    pub output: Option<Decimal>,
    pub input_batches: Option<Decimal>,
    pub output_batches: Option<Decimal>,
    pub cache_read: Option<Decimal>,
    pub batch_multiplier: Decimal,
}

impl Prices {
    /// Reads LiteLLM's keys: `input_cost_per_token`, `output_cost_per_token`,
    /// `input_cost_per_token_batches`, `output_cost_per_token_batches`,
    /// `cache_read_input_token_cost`, plus `batch_cost_multiplier`.
    /// Values may be numbers or strings; both are read exactly.
    pub fn from_model_info(info: &BTreeMap<String, Value>) -> Result<Prices, String> {
        Self::from_config(&BTreeMap::new(), info)
    }

    /// A deployment's prices, from both places LiteLLM reads them: its
    /// `litellm_params` (LiteLLM's "custom pricing", a per-deployment
    /// override) and its `model_info`. A key set in `litellm_params` wins
    /// over the same key in `model_info`; errors name the section at fault.
    pub fn from_config(
        litellm_params: &BTreeMap<String, Value>,
        model_info: &BTreeMap<String, Value>,
    ) -> Result<Prices, String> {
        let get = |key: &str| -> Result<Option<Decimal>, String> {
            let found = [
                ("litellm_params", litellm_params),
                ("model_info", model_info),
            ]
            .into_iter()
            .find_map(|(section, map)| match map.get(key) {
                None | Some(Value::Null) => None,
                Some(v) => Some((section, v)),
            });
            let Some((section, v)) = found else {
                return Ok(None);
            };
            let d = decimal_of(v).map_err(|e| format!("{section}.{key}: {e}"))?;
            if d.is_sign_negative() {
                return Err(format!("{section}.{key}: must not be negative"));
            }
            Ok(Some(d))
        };
        Ok(Prices {
            input: get("input_cost_per_token")?,
            output: get("output_cost_per_token")?,
            input_batches: get("input_cost_per_token_batches")?,
            output_batches: get("output_cost_per_token_batches")?,
            cache_read: get("cache_read_input_token_cost")?,
            batch_multiplier: get(BATCH_MULTIPLIER_KEY)?.unwrap_or(DEFAULT_BATCH_MULTIPLIER),
        })
    }

    /// Whether any price is configured.
    pub fn is_priced(&self) -> bool {
        self.input.is_some()
            || self.output.is_some()
            || self.input_batches.is_some()
            || self.output_batches.is_some()
    }

    /// The cost of one batch line.
    ///
    /// - uncached input tokens: `input_cost_per_token_batches`, else
    ///   `input_cost_per_token` × multiplier;
    /// - cached input tokens: `cache_read_input_token_cost` × multiplier,
    ///   else priced as uncached input;
    /// - output tokens: `output_cost_per_token_batches`, else
    ///   `output_cost_per_token` × multiplier.
    pub fn batch_line(&self, t: Tokens) -> LineCost {
        if !self.is_priced() {
            return LineCost::unpriced();
        }
        let m = self.batch_multiplier;
        let input_price = self
            .input_batches
            .or(self.input.map(|p| p * m))
            .unwrap_or_default();
        let cached_price = self.cache_read.map(|p| p * m).unwrap_or(input_price);
        let output_price = self
            .output_batches
            .or(self.output.map(|p| p * m))
            .unwrap_or_default();
        let cached = t.cached_tokens.min(t.input_tokens);
        let input = Decimal::from(t.input_tokens - cached) * input_price
            + Decimal::from(cached) * cached_price;
        let output = Decimal::from(t.output_tokens) * output_price;
        LineCost {
            input,
            output,
            priced: true,
        }
    }
}

/// A JSON number or numeric string as an exact decimal. Numbers are read
/// from their shortest decimal form, so `0.000001` is exactly 1e-6.
pub fn decimal_of(v: &Value) -> Result<Decimal, String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => return Err(format!("expected a number, got {other}")),
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|e| format!("\"{text}\" is not a decimal: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn info(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn regular_prices_are_halved_for_batches() {
        let p = Prices::from_model_info(&info(
            json!({"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}),
        ))
        .unwrap();
        let c = p.batch_line(Tokens {
            input_tokens: 10,
            cached_tokens: 0,
            output_tokens: 16,
        });
        assert_eq!(c.input, Decimal::from_str("0.000005").unwrap());
        assert_eq!(c.output, Decimal::from_str("0.000016").unwrap());
        assert_eq!(c.total(), Decimal::from_str("0.000021").unwrap());
    }

    #[test]
    fn explicit_batch_prices_win_and_cached_tokens_use_the_cache_price() {
        let p = Prices::from_model_info(&info(json!({
            "input_cost_per_token": "0.000004", "output_cost_per_token": 0.000008,
            "input_cost_per_token_batches": "0.000001", "output_cost_per_token_batches": "0.000003",
            "cache_read_input_token_cost": "0.0000004"
        })))
        .unwrap();
        let c = p.batch_line(Tokens {
            input_tokens: 10,
            cached_tokens: 4,
            output_tokens: 2,
        });
        // 6 × 0.000001 + 4 × 0.0000004 × 0.5 = 0.0000068; 2 × 0.000003 = 0.000006
        assert_eq!(c.input, Decimal::from_str("0.0000068").unwrap());
        assert_eq!(c.output, Decimal::from_str("0.000006").unwrap());
    }

    #[test]
    fn multiplier_is_overridable_and_unpriced_models_cost_zero() {
        let p = Prices::from_model_info(&info(
            json!({"input_cost_per_token": 0.00001, "batch_cost_multiplier": 1}),
        ))
        .unwrap();
        assert_eq!(
            p.batch_line(Tokens {
                input_tokens: 3,
                cached_tokens: 0,
                output_tokens: 5
            })
            .total(),
            Decimal::from_str("0.00003").unwrap()
        );
        let free = Prices::from_model_info(&BTreeMap::new()).unwrap();
        let c = free.batch_line(Tokens {
            input_tokens: 3,
            cached_tokens: 0,
            output_tokens: 5,
        });
        assert!(!c.priced);
        assert_eq!(c.total(), Decimal::ZERO);
        assert!(Prices::from_model_info(&info(json!({"input_cost_per_token": "abc"}))).is_err());
        assert!(Prices::from_model_info(&info(json!({"input_cost_per_token": -1}))).is_err());
    }

    #[test]
    fn litellm_params_prices_count_and_override_model_info() {
        let params = info(json!({
            "input_cost_per_token": 0.000001, "output_cost_per_token": "0.000002",
            "output_cost_per_token_batches": 0.0000005,
            "cache_read_input_token_cost": 0.0000002,
            "api_base": "http://x", "max_parallel_requests": 4
        }));
        let model_info =
            info(json!({"input_cost_per_token": 9, "input_cost_per_token_batches": 0.0000003}));
        let p = Prices::from_config(&params, &model_info).unwrap();
        assert_eq!(p.input, Some(Decimal::from_str("0.000001").unwrap()));
        assert_eq!(p.output, Some(Decimal::from_str("0.000002").unwrap()));
        assert_eq!(
            p.output_batches,
            Some(Decimal::from_str("0.0000005").unwrap())
        );
        assert_eq!(p.cache_read, Some(Decimal::from_str("0.0000002").unwrap()));
        // Not in litellm_params: model_info still counts.
        assert_eq!(
            p.input_batches,
            Some(Decimal::from_str("0.0000003").unwrap())
        );
        let only_params = Prices::from_config(&params, &BTreeMap::new()).unwrap();
        assert!(only_params.is_priced());
        let c = only_params.batch_line(Tokens {
            input_tokens: 10,
            cached_tokens: 4,
            output_tokens: 2,
        });
        // 6 × 0.0000005 + 4 × 0.0000001 = 0.0000034; 2 × 0.0000005 = 0.000001
        assert_eq!(c.input, Decimal::from_str("0.0000034").unwrap());
        assert_eq!(c.output, Decimal::from_str("0.000001").unwrap());
        let bad = info(json!({"output_cost_per_token": "cheap"}));
        let e = Prices::from_config(&bad, &BTreeMap::new()).unwrap_err();
        assert!(
            e.starts_with("litellm_params.output_cost_per_token:"),
            "{e}"
        );
    }
}
