//! The store contract, as every backend must keep it: claims are exclusive
//! and durable, every runner write is fenced by its lease, the journal is
//! exactly-once, and a file delete racing a batch create never leaves a
//! batch without its input. Written against `dyn MetaStore` so a second
//! backend runs the same suite by adding its constructor to `backends()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

mod common;

use batchgate_core::BatchStatus;
use batchgate_store::{Deleted, LineResult, MetaStore, SqliteStore, StoreError, Transition};
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
