//! Budgets: a limit on what a key or a team may spend in a period.

use rust_decimal::Decimal;

/// A spending limit and what was spent against it this period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub spend: Decimal,
    /// `None`: no limit.
    pub max: Option<Decimal>,
}

impl Budget {
    /// Spent up to the limit or past it (a budget without a limit never
    /// is): no new work may start on it.
    pub fn exceeded(&self) -> bool {
        self.max.is_some_and(|max| self.spend >= max)
    }
}

/// Whose budget ran out, and by how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overspent {
    /// `key <id>` or `team <id>`.
    pub who: String,
    pub spend: Decimal,
    pub max: Decimal,
}

/// The first of `budgets` (in order: a key's before its team's) that is
/// exceeded.
pub fn first_overspent(budgets: impl IntoIterator<Item = (String, Budget)>) -> Option<Overspent> {
    budgets.into_iter().find_map(|(who, b)| match b.max {
        Some(max) if b.exceeded() => Some(Overspent {
            who,
            spend: b.spend,
            max,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn a_budget_is_exceeded_at_its_limit_not_before() {
        let b = |spend: &str, max: Option<&str>| Budget {
            spend: d(spend),
            max: max.map(d),
        };
        assert!(!b("0.99", Some("1")).exceeded());
        assert!(b("1", Some("1")).exceeded());
        assert!(b("1.01", Some("1")).exceeded());
        assert!(!b("1000000", None).exceeded());
        assert!(b("0", Some("0")).exceeded());
    }

    #[test]
    fn the_key_is_named_before_its_team() {
        let over = Budget {
            spend: d("2"),
            max: Some(d("1")),
        };
        let fine = Budget {
            spend: d("0"),
            max: Some(d("1")),
        };
        let got = first_overspent([("key k".to_string(), over), ("team t".to_string(), over)]);
        assert_eq!(got.map(|o| o.who), Some("key k".to_string()));
        let got = first_overspent([("key k".to_string(), fine), ("team t".to_string(), over)]);
        assert_eq!(
            got,
            Some(Overspent {
                who: "team t".into(),
                spend: d("2"),
                max: d("1")
            })
        );
        assert_eq!(first_overspent([("key k".to_string(), fine)]), None);
    }
}
