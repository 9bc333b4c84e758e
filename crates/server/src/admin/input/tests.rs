#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

/// Any JSON value, with strings biased towards what breaks parsers:
/// non-ASCII, huge digit runs, signs, units.
pub fn any_json() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        any::<String>(),
        "[0-9]{0,25}[smhdé ñ]?",
        "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?(e[-+]?[0-9]{1,5})?",
        Just("NaN".to_string()),
        Just("inf".to_string()),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text.prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: [&str; 9] = [
    "key",
    "key_alias",
    "team_id",
    "team_alias",
    "models",
    "max_budget",
    "budget_duration",
    "metadata",
    "keys",
];

proptest! {
    #[test]
    fn any_duration_is_a_bounded_period_or_a_named_400(s in any::<String>()) {
        match period_seconds(&s) {
            Ok(secs) => prop_assert!((1..=MAX_BUDGET_SECONDS).contains(&secs)),
            Err(e) => {
                prop_assert_eq!(e.status, 400);
                prop_assert_eq!(e.body.param.as_deref(), Some("budget_duration"));
            }
        }
    }

    #[test]
    fn any_budget_is_in_range_or_a_named_400(v in any_json()) {
        match budget_amount(&v) {
            Ok(d) => prop_assert!(d >= Decimal::ZERO && d <= Decimal::from(MAX_BUDGET_USD)),
            Err(e) => {
                prop_assert_eq!(e.status, 400);
                prop_assert_eq!(e.body.param.as_deref(), Some("max_budget"));
            }
        }
    }

    /// Whatever a field holds, parsing a body either succeeds or names
    /// exactly that field.
    #[test]
    fn any_field_value_parses_or_names_the_field(field in prop::sample::select(&FIELDS[..]), v in any_json()) {
        let body = json!({ field: v });
        for result in [
            KeyInput::parse(body.clone()).map(|_| ()),
            TeamInput::parse(body.clone()).map(|_| ()),
            delete_keys(body.clone()).map(|_| ()),
        ] {
            if let Err(e) = result {
                prop_assert_eq!(e.status, 400);
                let param = e.body.param.clone().unwrap_or_default();
                prop_assert!(param == field || param == "keys", "{:?} for {}", e, field);
            }
        }
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_400(v in any_json().prop_filter("not an object", |v| !v.is_object())) {
        prop_assert_eq!(KeyInput::parse(v.clone()).map(|_| ()).unwrap_err().status, 400);
        prop_assert_eq!(TeamInput::parse(v).map(|_| ()).unwrap_err().status, 400);
    }
}

#[test]
fn hostile_durations_are_named_400s() {
    for d in [
        "3é",
        "ñd",
        "é",
        "99999999999999999999d",
        "9223372036854775807d",
        "9223372036854775807s",
        "3651d",
        "0d",
        "-1d",
        "30",
        "",
    ] {
        let e = period_seconds(d).unwrap_err();
        assert_eq!(
            (e.status, e.body.param.as_deref()),
            (400, Some("budget_duration")),
            "{d:?}"
        );
    }
    assert_eq!(period_seconds("3650d").unwrap(), MAX_BUDGET_SECONDS);
    assert_eq!(period_seconds("30s").unwrap(), 30);
}

#[test]
fn budgets_are_finite_non_negative_and_bounded() {
    for ok in [
        json!(0),
        json!("0.0002"),
        json!(12.5),
        json!("1e3"),
        json!(MAX_BUDGET_USD),
    ] {
        assert!(budget_amount(&ok).is_ok(), "{ok}");
    }
    for bad in [
        json!(-1),
        json!("-0.01"),
        json!("NaN"),
        json!("inf"),
        json!("1e40"),
        json!(1e300),
        json!(true),
        json!([1]),
        json!(MAX_BUDGET_USD + 1),
        json!("9".repeat(100)),
    ] {
        let e = budget_amount(&bad).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("max_budget"), "{bad}");
    }
}

#[test]
fn metadata_and_lists_are_bounded() {
    let mut deep = json!(1);
    for _ in 0..20 {
        deep = json!({ "a": deep });
    }
    for bad in [
        json!({"metadata": deep}),
        json!({"metadata": [1]}),
        json!({"metadata": {"big": "x".repeat(20_000)}}),
        json!({"models": "m"}),
        json!({"models": [""]}),
        json!({"models": vec!["m"; 1001]}),
        json!({"key_alias": "a".repeat(257)}),
        json!({"team_id": ""}),
        json!({"team_id": "a\u{0}b"}),
    ] {
        let e = KeyInput::parse(bad.clone()).unwrap_err();
        assert_eq!(e.status, 400, "{bad}");
        assert!(e.body.param.is_some(), "{bad}");
    }
    let ok = KeyInput::parse(
        json!({"models": ["a", "b"], "metadata": {"x": {"y": [1, 2]}}, "unknown": 5}),
    )
    .unwrap();
    assert_eq!(ok.models.unwrap(), ["a", "b"]);
}
