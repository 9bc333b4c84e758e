//! What tokens cost. Prices come from a deployment's `model_info` (LiteLLM's
//! names); arithmetic is exact (`rust_decimal`), never floating point. A
//! model without prices costs zero and is reported as unpriced.

mod price;
mod total;

pub use price::{decimal_of, Prices, BATCH_MULTIPLIER_KEY, DEFAULT_BATCH_MULTIPLIER};
pub use rust_decimal::Decimal;
pub use total::{BatchCost, LineCost, Tokens};
