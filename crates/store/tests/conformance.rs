//! The store contract, as every backend must keep it: claims are exclusive
//! and durable, every runner write is fenced by its lease, the journal is
//! exactly-once, and a file delete racing a batch create never leaves a
//! batch without its input. Written against `dyn MetaStore` so a second
//! backend runs the same suite by adding its constructor to `backends()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

mod common;

use batchgate_core::{BatchStatus, ListOrder};
use batchgate_store::{
    Deleted, FileFilter, LineResult, MetaStore, Owner, SqliteStore, StoreError, Transition,
};
use common::{batch, file};

/// One fresh, empty store per backend (the temp dir lives as long as it).
async fn backends() -> Vec<(&'static str, Arc<dyn MetaStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("meta.db"))
        .await
        .unwrap();
    vec![("sqlite", Arc::new(sqlite), dir)]
}

fn result(line_no: u64) -> LineResult {
    LineResult {
        line_no,
        custom_id: format!("c{line_no}"),
        ok: true,
        line: format!("{{\"custom_id\":\"c{line_no}\"}}"),
        usage: None,
        charge: None,
    }
}

async fn with_batch(store: &Arc<dyn MetaStore>, key: &str) {
    store
        .insert_file(&file(&format!("in-{key}")))
        .await
        .unwrap();
    assert!(store
        .insert_batch(&batch(key, &format!("in-{key}")))
        .await
        .unwrap());
}

#[tokio::test]
async fn a_batch_is_claimed_by_one_runner_at_a_time() {
    for (name, store, _dir) in backends().await {
        with_batch(&store, "b1").await;
        // Many claimers at once: exactly one gets it.
        let claims = futures::future::join_all((0..16).map(|i| {
            let store = store.clone();
            async move {
                store
                    .claim_batch(&format!("inst-{i}"), 100, 130)
                    .await
                    .unwrap()
            }
        }))
        .await;
        let won: Vec<_> = claims.into_iter().flatten().collect();
        assert_eq!(won.len(), 1, "{name}: one claim wins");
        let (rec, first) = &won[0];
        assert_eq!(rec.key, "b1");
        // While the lease runs nobody else gets it, and its holder cannot
        // claim it twice either.
        assert!(
            store
                .claim_batch("other", 120, 150)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert!(
            store
                .claim_batch(&first.owner, 120, 150)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        // Renewal works for the holder only.
        assert!(store.renew_lease(first, 160).await.unwrap(), "{name}");
        // Once it lapses, another instance takes it, under a higher epoch.
        let (_, second) = store
            .claim_batch("late", 161, 190)
            .await
            .unwrap()
            .expect("taken over");
        assert!(second.epoch > first.epoch, "{name}: epoch grows");
        assert!(
            !store.renew_lease(first, 200).await.unwrap(),
            "{name}: stale renew refused"
        );
    }
}

#[tokio::test]
async fn a_stale_lease_can_never_write() {
    for (name, store, _dir) in backends().await {
        with_batch(&store, "b1").await;
        let (_, stale) = store.claim_batch("a", 100, 110).await.unwrap().unwrap();
        store.record_results(&stale, &[result(1)]).await.unwrap();
        let (_, fresh) = store.claim_batch("b", 111, 140).await.unwrap().unwrap();

        let err = store
            .record_results(&stale, &[result(2)])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LeaseLost), "{name}: {err}");
        let t = Transition::new(&[BatchStatus::Validating], BatchStatus::InProgress, 112)
            .fenced(&stale);
        let err = store.transition("b1", &t).await.unwrap_err();
        assert!(matches!(err, StoreError::LeaseLost), "{name}: {err}");
        // Releasing a stale lease leaves the new holder's alone.
        store.release_lease(&stale).await.unwrap();
        assert!(store.renew_lease(&fresh, 150).await.unwrap(), "{name}");

        // Nothing the stale runner tried landed; the fresh one writes.
        assert_eq!(store.finished_lines("b1").await.unwrap(), vec![1], "{name}");
        let rec = store.get_batch("b1").await.unwrap().unwrap();
        assert_eq!(rec.batch.status, BatchStatus::Validating, "{name}");
        store.record_results(&fresh, &[result(2)]).await.unwrap();
        let t = Transition::new(&[BatchStatus::Validating], BatchStatus::InProgress, 112)
            .with_total(2)
            .fenced(&fresh);
        assert!(
            store.transition("b1", &t).await.unwrap().is_some(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_journal_counts_each_line_once() {
    for (name, store, _dir) in backends().await {
        with_batch(&store, "b1").await;
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
}

#[tokio::test]
async fn deleting_an_input_and_creating_its_batch_never_both_win() {
    for (name, store, _dir) in backends().await {
        for round in 0..20 {
            let input = format!("in-{round}");
            store.insert_file(&file(&input)).await.unwrap();
            let b = batch(&format!("b{round}"), &input);
            let (created, deleted) =
                tokio::join!(store.insert_batch(&b), store.delete_file(&input));
            let created = created.unwrap();
            match deleted.unwrap() {
                Deleted::Removed(_) => {
                    assert!(!created, "{name}: a batch was created over a deleted input");
                    assert!(store.get_batch(&b.key).await.unwrap().is_none(), "{name}");
                }
                Deleted::InUse => {
                    assert!(created, "{name}");
                    assert!(store.get_file(&input, 0).await.unwrap().is_some(), "{name}");
                }
                Deleted::Missing => panic!("{name}: the file existed"),
            }
        }
    }
}

#[tokio::test]
async fn a_batch_keeps_its_input_until_it_ends() {
    for (name, store, _dir) in backends().await {
        with_batch(&store, "b1").await;
        assert_eq!(
            store.delete_file("in-b1").await.unwrap(),
            Deleted::InUse,
            "{name}"
        );
        let t = Transition::new(&[BatchStatus::Validating], BatchStatus::Failed, 5);
        store.transition("b1", &t).await.unwrap().unwrap();
        assert!(
            matches!(
                store.delete_file("in-b1").await.unwrap(),
                Deleted::Removed(_)
            ),
            "{name}"
        );
        assert_eq!(
            store.delete_file("in-b1").await.unwrap(),
            Deleted::Missing,
            "{name}"
        );
    }
}

fn key(id: &str, team: Option<&str>) -> batchgate_store::KeyRecord {
    batchgate_store::KeyRecord {
        key_id: id.into(),
        key_hash: format!("hash-{id}"),
        key_alias: None,
        team_id: team.map(str::to_string),
        models: vec![],
        max_budget: None,
        budget_duration: None,
        budget_seconds: None,
        budget_reset_at: None,
        spend: rust_decimal::Decimal::ZERO,
        metadata: serde_json::json!({}),
        created_at: 1,
    }
}

fn caller(key_id: &str, team: Option<&str>) -> batchgate_core::Caller {
    batchgate_core::Caller {
        key_id: Some(key_id.into()),
        team_id: team.map(str::to_string),
        is_master: false,
        models: vec![],
    }
}

#[tokio::test]
async fn transitions_apply_only_from_the_named_states() {
    for (name, store, _dir) in backends().await {
        with_batch(&store, "b1").await;
        let wrong = Transition::new(&[BatchStatus::InProgress], BatchStatus::Cancelling, 5);
        assert!(
            store.transition("b1", &wrong).await.unwrap().is_none(),
            "{name}"
        );
        let right =
            Transition::new(&[BatchStatus::Validating], BatchStatus::InProgress, 6).with_total(3);
        let row = store.transition("b1", &right).await.unwrap().unwrap();
        assert_eq!(row.batch.status, BatchStatus::InProgress, "{name}");
        assert_eq!(row.batch.in_progress_at, Some(6), "{name}");
        assert_eq!(row.batch.request_counts.total, 3, "{name}");
        // An ended batch releases its lease and is never claimed again.
        let end = Transition::new(&[BatchStatus::InProgress], BatchStatus::Failed, 7);
        store.transition("b1", &end).await.unwrap().unwrap();
        assert!(
            store.claim_batch("x", 8, 100).await.unwrap().is_none(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn listings_page_by_cursor_and_hide_other_owners() {
    for (name, store, _dir) in backends().await {
        for (k, owner) in [("a1", "ka"), ("b1", "kb"), ("a2", "ka"), ("a3", "ka")] {
            let mut f = file(k);
            f.owner = Owner {
                key_id: Some(owner.into()),
                team_id: None,
            };
            store.insert_file(&f).await.unwrap();
        }
        let filter = FileFilter {
            caller: caller("ka", None),
            ..FileFilter::default()
        };
        let keys = |page: &batchgate_store::Page<batchgate_store::FileRecord>| {
            page.items.iter().map(|f| f.key.clone()).collect::<Vec<_>>()
        };
        let first = store
            .list_files(&filter, None, 2, ListOrder::Asc)
            .await
            .unwrap();
        assert_eq!(keys(&first), ["a1", "a2"], "{name}");
        assert!(first.has_more, "{name}");
        let next = store
            .list_files(&filter, Some("a2"), 2, ListOrder::Asc)
            .await
            .unwrap();
        assert_eq!(keys(&next), ["a3"], "{name}");
        assert!(!next.has_more, "{name}");
        // A cursor the caller may not see behaves like an unknown one.
        let hidden = store
            .list_files(&filter, Some("b1"), 2, ListOrder::Asc)
            .await
            .unwrap();
        let unknown = store
            .list_files(&filter, Some("zz"), 2, ListOrder::Asc)
            .await
            .unwrap();
        assert_eq!(keys(&hidden), keys(&unknown), "{name}");
        assert_eq!(hidden.has_more, unknown.has_more, "{name}");
    }
}

#[tokio::test]
async fn expiry_spares_the_inputs_of_running_batches() {
    for (name, store, _dir) in backends().await {
        for k in ["old-free", "old-input"] {
            let mut f = file(k);
            f.object.expires_at = Some(50);
            store.insert_file(&f).await.unwrap();
        }
        assert!(store.insert_batch(&batch("b1", "old-input")).await.unwrap());
        assert!(
            store.get_file("old-free", 60).await.unwrap().is_none(),
            "{name}: expired is hidden"
        );
        let taken = store.take_expired_files(60, 10).await.unwrap();
        let taken: Vec<_> = taken.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(taken, ["old-free"], "{name}");
        assert!(
            store
                .get_file("old-input", i64::MIN)
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn keys_and_teams_round_trip() {
    for (name, store, _dir) in backends().await {
        store.insert_key(&key("k1", Some("t1"))).await.unwrap();
        let by_hash = store.key_by_hash("hash-k1").await.unwrap().unwrap();
        assert_eq!(by_hash.team_id.as_deref(), Some("t1"), "{name}");
        let mut changed = by_hash.clone();
        changed.key_alias = Some("alias".into());
        store.update_key(&changed).await.unwrap();
        let by_id = store.key_by_id("k1").await.unwrap().unwrap();
        assert_eq!(by_id.key_alias.as_deref(), Some("alias"), "{name}");
        assert!(store.delete_key("k1").await.unwrap(), "{name}");
        assert!(!store.delete_key("k1").await.unwrap(), "{name}");
        assert!(
            store.key_by_hash("hash-k1").await.unwrap().is_none(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_line_is_charged_once_to_its_key_and_team() {
    for (name, store, _dir) in backends().await {
        store.insert_key(&key("k1", Some("t1"))).await.unwrap();
        store.insert_file(&file("in")).await.unwrap();
        let mut b = batch("b1", "in");
        b.owner = Owner {
            key_id: Some("k1".into()),
            team_id: Some("t1".into()),
        };
        assert!(store.insert_batch(&b).await.unwrap());
        let (_, lease) = store.claim_batch("a", 1, 100).await.unwrap().unwrap();
        let charged = |n: u64| {
            let mut r = result(n);
            r.usage = Some(batchgate_store::LineUsage {
                input_tokens: 10,
                cached_tokens: 0,
                output_tokens: 5,
                reasoning_tokens: 0,
            });
            r.charge = Some(batchgate_store::LineCharge {
                input: rust_decimal::Decimal::new(1, 2),
                output: rust_decimal::Decimal::new(2, 2),
                priced: true,
            });
            r
        };
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
        assert_eq!(
            k.spend,
            rust_decimal::Decimal::new(9, 2),
            "{name}: 3 lines × 0.03"
        );
        let rec = store.get_batch("b1").await.unwrap().unwrap();
        assert_eq!(rec.batch.request_counts.completed, 3, "{name}");
        let logs = store
            .spend_logs(&batchgate_store::SpendFilter::default(), 100)
            .await
            .unwrap();
        let lines: u64 = logs.iter().map(|l| l.lines).sum();
        assert_eq!(lines, 3, "{name}");
    }
}

#[tokio::test]
async fn batch_listings_filter_by_model() {
    for (name, store, _dir) in backends().await {
        for (k, model) in [("b1", "m"), ("b2", "other"), ("b3", "m")] {
            store.insert_file(&file(&format!("in-{k}"))).await.unwrap();
            let mut b = batch(k, &format!("in-{k}"));
            b.batch.model = Some(model.into());
            assert!(store.insert_batch(&b).await.unwrap());
        }
        let master = batchgate_core::Caller::master();
        let keys = |p: batchgate_store::Page<batchgate_store::BatchRecord>| {
            p.items.into_iter().map(|b| b.key).collect::<Vec<_>>()
        };
        let all = store.list_batches(&master, None, None, 10).await.unwrap();
        assert_eq!(keys(all), ["b3", "b2", "b1"], "{name}");
        let m = store
            .list_batches(&master, Some("m"), None, 1)
            .await
            .unwrap();
        assert!(m.has_more, "{name}");
        assert_eq!(keys(m), ["b3"], "{name}");
        let rest = store
            .list_batches(&master, Some("m"), Some("b3"), 10)
            .await
            .unwrap();
        assert_eq!(keys(rest), ["b1"], "{name}");
    }
}
