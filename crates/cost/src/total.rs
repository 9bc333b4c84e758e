//! Token counts and costs, summed exactly.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Tokens of one line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
}

/// The cost of one line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCost {
    pub input: Decimal,
    pub output: Decimal,
    /// False when the model has no price (the cost is then zero).
    pub priced: bool,
}

impl LineCost {
    pub fn unpriced() -> LineCost {
        LineCost {
            input: Decimal::ZERO,
            output: Decimal::ZERO,
            priced: false,
        }
    }

    pub fn total(&self) -> Decimal {
        self.input + self.output
    }
}

/// A batch's cost as clients see it (the batch object's `cost` field).
/// Amounts are decimal strings, so no client parses them as floats by
/// accident.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCost {
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub input: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub output: Decimal,
    pub priced_lines: u64,
    pub unpriced_lines: u64,
}

impl BatchCost {
    pub fn zero() -> BatchCost {
        BatchCost {
            currency: "USD".into(),
            ..Default::default()
        }
    }

    /// Adds one line.
    pub fn add(&mut self, line: &LineCost) {
        self.input += line.input;
        self.output += line.output;
        self.total = self.input + self.output;
        if line.priced {
            self.priced_lines += 1;
        } else {
            self.unpriced_lines += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(input: i64, output: i64, priced: bool) -> LineCost {
        LineCost {
            input: Decimal::new(input, 3),
            output: Decimal::new(output, 3),
            priced,
        }
    }

    #[test]
    fn a_batch_cost_adds_lines_exactly_and_counts_them() {
        let mut cost = BatchCost::zero();
        assert_eq!(cost.currency, "USD");
        cost.add(&line(1, 2, true));
        cost.add(&line(10, 20, true));
        cost.add(&LineCost::unpriced());
        assert_eq!(cost.input, Decimal::new(11, 3));
        assert_eq!(cost.output, Decimal::new(22, 3));
        assert_eq!(cost.total, Decimal::new(33, 3));
        assert_eq!((cost.priced_lines, cost.unpriced_lines), (2, 1));
    }

    #[test]
    fn an_unpriced_line_costs_nothing() {
        let u = LineCost::unpriced();
        assert!(!u.priced);
        assert_eq!(u.total(), Decimal::ZERO);
        assert_eq!(line(5, 7, true).total(), Decimal::new(12, 3));
    }
}
