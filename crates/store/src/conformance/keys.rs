//! Virtual keys, teams and budget periods.

use rust_decimal::Decimal;

use super::rows::key;
use super::Backend;
use crate::TeamRecord;

pub async fn keys_and_teams_round_trip(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    let mut k1 = key("k1", Some("t1"));
    k1.models = vec!["m".into(), "n".into()];
    k1.max_budget = Some(Decimal::new(125, 2));
    k1.metadata = serde_json::json!({"z": 1, "a": {"nested": true}});
    store.insert_key(&k1).await.unwrap();
    let by_hash = store.key_by_hash("hash-k1").await.unwrap().unwrap();
    assert_eq!(by_hash, k1, "{name}: every field round-trips");
    assert_eq!(
        serde_json::to_string(&by_hash.metadata).unwrap(),
        r#"{"z":1,"a":{"nested":true}}"#,
        "{name}: metadata keeps its key order"
    );
    let mut changed = by_hash.clone();
    changed.key_alias = Some("alias".into());
    changed.spend = Decimal::new(5, 0);
    changed.blocked = true;
    store.update_key(&changed).await.unwrap();
    let by_id = store.key_by_id("k1").await.unwrap().unwrap();
    assert_eq!(by_id.key_alias.as_deref(), Some("alias"), "{name}");
    assert!(by_id.blocked, "{name}: blocking persists");
    changed.blocked = false;
    store.update_key(&changed).await.unwrap();
    let unblocked = store.key_by_hash("hash-k1").await.unwrap().unwrap();
    assert!(!unblocked.blocked, "{name}: and so does unblocking");
    assert_eq!(
        by_id.spend,
        Decimal::ZERO,
        "{name}: an update sets no spend"
    );
    assert!(store.delete_key("k1").await.unwrap(), "{name}");
    assert!(!store.delete_key("k1").await.unwrap(), "{name}");
    assert!(
        store.key_by_hash("hash-k1").await.unwrap().is_none(),
        "{name}"
    );

    let mut t = TeamRecord {
        team_id: "t1".into(),
        team_alias: Some("one".into()),
        max_budget: Some(Decimal::new(10, 0)),
        budget_duration: Some("30d".into()),
        budget_seconds: Some(2_592_000),
        budget_reset_at: Some(2_592_001),
        spend: Decimal::ZERO,
        created_at: 1,
    };
    store.upsert_team(&t).await.unwrap();
    assert_eq!(store.team("t1").await.unwrap(), Some(t.clone()), "{name}");
    t.team_alias = Some("renamed".into());
    t.created_at = 99;
    store.upsert_team(&t).await.unwrap();
    let got = store.team("t1").await.unwrap().unwrap();
    assert_eq!(got.team_alias.as_deref(), Some("renamed"), "{name}");
    assert_eq!(
        got.created_at, 1,
        "{name}: an upsert keeps the creation time"
    );
    assert!(store.team("t2").await.unwrap().is_none(), "{name}");
}

/// A period that ended restarts from `now` with zero spend; one whose
/// next end is past the end of time saturates instead of failing; a
/// non-positive period never restarts.
pub async fn budget_resets_restart_periods_and_saturate(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    for (id, seconds, reset_at) in [
        ("huge", i64::MAX - 10, 0),
        ("day", 86_400, 50),
        ("zero", 0, 0),
        ("later", 60, 5_000),
    ] {
        let mut k = key(id, None);
        k.budget_seconds = Some(seconds);
        k.budget_reset_at = Some(reset_at);
        k.spend = Decimal::ONE;
        store.insert_key(&k).await.unwrap();
    }
    let spend = |n| async move {
        let k = store.key_by_id(n).await.unwrap().unwrap();
        (k.spend, k.budget_reset_at)
    };
    let team = TeamRecord {
        team_id: "t".into(),
        team_alias: None,
        max_budget: None,
        budget_duration: Some("1d".into()),
        budget_seconds: Some(86_400),
        budget_reset_at: Some(10),
        spend: Decimal::ONE,
        created_at: 1,
    };
    store.upsert_team(&team).await.unwrap();
    assert_eq!(store.reset_budgets(1_000).await.unwrap(), 3, "{name}");
    let zero = Decimal::ZERO;
    assert_eq!(spend("huge").await, (zero, Some(i64::MAX)), "{name}");
    assert_eq!(spend("day").await, (zero, Some(1_000 + 86_400)), "{name}");
    let (one, kept) = (Decimal::ONE, Some(0));
    assert_eq!(spend("zero").await, (one, kept), "{name}: never restarts");
    assert_eq!(spend("later").await, (one, Some(5_000)), "{name}: not yet");
    let t = store.team("t").await.unwrap().unwrap();
    assert_eq!(t.spend, Decimal::ZERO, "{name}");
    assert_eq!(t.budget_reset_at, Some(1_000 + 86_400), "{name}");
    // Run again at once: nothing is due.
    assert_eq!(store.reset_budgets(1_000).await.unwrap(), 0, "{name}");
}
