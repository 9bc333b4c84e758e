//! The journal and the money it carries: each line counts and is charged
//! exactly once, whoever commits it and however often.

use batchgate_core::BatchStatus;
use rust_decimal::Decimal;

use super::rows::{batch, charged, file, key};
use super::{result, with_batch, Backend};
use crate::{Owner, SpendFilter, TeamRecord, Transition};

pub async fn the_journal_counts_each_line_once(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    with_batch(store, "b1").await;
    let (_, lease) = store.claim_batch("a", 100, 200).await.unwrap().unwrap();
    store
        .record_results(&lease, &[result(1), result(2)])
        .await
        .unwrap();
    store
        .record_results(&lease, &[result(2), result(3)])
        .await
        .unwrap();
    let rec = store.get_batch("b1").await.unwrap().unwrap();
    assert_eq!(rec.batch.request_counts.completed, 3, "{name}");
    let mut lines = store.finished_lines("b1").await.unwrap();
    lines.sort_unstable();
    assert_eq!(lines, vec![1, 2, 3], "{name}");
}

pub async fn a_line_is_charged_once_to_its_key_and_team(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    store.insert_key(&key("k1", Some("t1"))).await.unwrap();
    store.insert_file(&file("in")).await.unwrap();
    let mut bt = batch("b1", "in");
    bt.owner = Owner {
        key_id: Some("k1".into()),
        team_id: Some("t1".into()),
    };
    assert!(store.insert_batch(&bt).await.unwrap());
    let (_, lease) = store.claim_batch("a", 1, 100).await.unwrap().unwrap();
    store
        .record_results(&lease, &[charged(1), charged(2)])
        .await
        .unwrap();
    // Line 2 again (a retry after a crash) and line 3.
    store
        .record_results(&lease, &[charged(2), charged(3)])
        .await
        .unwrap();
    let k = store.key_by_id("k1").await.unwrap().unwrap();
    assert_eq!(k.spend, Decimal::new(9, 2), "{name}: 3 lines × 0.03");
    let rec = store.get_batch("b1").await.unwrap().unwrap();
    assert_eq!(rec.batch.request_counts.completed, 3, "{name}");
    let logs = store
        .spend_logs(&SpendFilter::default(), 100)
        .await
        .unwrap();
    let lines: u64 = logs.iter().map(|l| l.lines).sum();
    assert_eq!(lines, 3, "{name}");
}

/// Two instances journal lines of two batches of one key and team at
/// once, in many small commits: the key's and the team's spend are the
/// exact sum, with no accrual lost to a concurrent one.
pub async fn spend_from_two_instances_adds_up_exactly(b: &Backend) {
    let name = b.name;
    let other = b.open_again().await;
    b.store.insert_key(&key("k1", Some("t1"))).await.unwrap();
    b.store.upsert_team(&team("t1")).await.unwrap();
    let mut leases = Vec::new();
    for (i, store) in [&b.store, &other].into_iter().enumerate() {
        let input = format!("in-{i}");
        store.insert_file(&file(&input)).await.unwrap();
        let mut bt = batch(&format!("b{i}"), &input);
        bt.owner = Owner {
            key_id: Some("k1".into()),
            team_id: Some("t1".into()),
        };
        assert!(store.insert_batch(&bt).await.unwrap());
        let claimed = store.claim_batch(&format!("inst-{i}"), 1, 1000).await;
        leases.push((store.clone(), claimed.unwrap().unwrap().1));
    }
    const LINES: u64 = 40;
    let writers = leases.iter().map(|(store, lease)| async move {
        for n in 1..=LINES {
            // Every line twice: a retried commit must not charge again.
            store.record_results(lease, &[charged(n)]).await.unwrap();
            store.record_results(lease, &[charged(n)]).await.unwrap();
        }
    });
    futures::future::join_all(writers).await;
    let expected = Decimal::new(3, 2) * Decimal::from(2 * LINES);
    let k = other.key_by_id("k1").await.unwrap().unwrap();
    assert_eq!(k.spend, expected, "{name}: key spend");
    let t = b.store.team("t1").await.unwrap().unwrap();
    assert_eq!(t.spend, expected, "{name}: team spend");
    let logs = b.store.spend_logs(&SpendFilter::default(), 1000).await;
    let logged: Decimal = logs.unwrap().iter().map(|l| l.spend).sum();
    assert_eq!(logged, expected, "{name}: ledger");
    let rec = b.store.get_batch("b0").await.unwrap().unwrap();
    let cost = rec.batch.cost.unwrap();
    assert_eq!(cost.total, "1.2", "{name}: 40 lines × 0.03");
    assert_eq!(
        (cost.input.as_str(), cost.output.as_str()),
        ("0.4", "0.8"),
        "{name}"
    );
    assert_eq!(cost.priced_lines, LINES, "{name}");
}

pub async fn batch_stats_count_statuses_and_pending_lines(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    for k in ["b1", "b2", "b3"] {
        with_batch(store, k).await;
    }
    let start = |total| {
        Transition::new(&[BatchStatus::Validating], BatchStatus::InProgress, 5).with_total(total)
    };
    store.transition("b1", &start(10)).await.unwrap().unwrap();
    store.transition("b2", &start(4)).await.unwrap().unwrap();
    let (_, lease) = store.claim_batch("a", 1, 100).await.unwrap().unwrap();
    store
        .record_results(&lease, &[result(1), result(2)])
        .await
        .unwrap();
    let stats = store.batch_stats().await.unwrap();
    let mut by_status = stats.by_status.clone();
    by_status.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        by_status,
        [(BatchStatus::InProgress, 2), (BatchStatus::Validating, 1)],
        "{name}"
    );
    assert_eq!(stats.pending_lines, 12, "{name}: 14 lines, 2 journaled");
    assert!(store.file_in_use("in-b1").await.unwrap(), "{name}");
    assert!(!store.file_in_use("in-none").await.unwrap(), "{name}");
}

fn team(id: &str) -> TeamRecord {
    TeamRecord {
        team_id: id.into(),
        team_alias: None,
        max_budget: None,
        budget_duration: None,
        budget_seconds: None,
        budget_reset_at: None,
        spend: Decimal::ZERO,
        created_at: 1,
    }
}
