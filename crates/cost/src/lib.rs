//! Money: what tokens cost, how line costs add up, and budgets. Prices come
//! from a deployment's `model_info` (LiteLLM's names); arithmetic is exact
//! (`rust_decimal`), never floating point. A model without prices costs zero
//! and is reported as unpriced. The store persists what this computes,
//! atomically with the journal; it does no money arithmetic of its own.

mod budget;
mod price;
mod total;

pub use budget::{first_overspent, Budget, Overspent};
pub use price::{decimal_of, Prices, BATCH_MULTIPLIER_KEY, DEFAULT_BATCH_MULTIPLIER};
pub use rust_decimal::Decimal;
pub use total::{BatchCost, LineCost, Tokens};
