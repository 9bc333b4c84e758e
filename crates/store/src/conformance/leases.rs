//! Claims, leases and their fence; status transitions and finalization.

use std::collections::BTreeMap;

use batchgate_core::BatchStatus;

use super::rows::{batch, file};
use super::{result, with_batch, Backend};
use crate::{LeaseHolder, StoreError, Transition};

pub async fn a_batch_is_claimed_by_one_runner_at_a_time(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    with_batch(store, "b1").await;
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

pub async fn a_stale_lease_can_never_write(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    with_batch(store, "b1").await;
    let (_, stale) = store.claim_batch("a", 100, 110).await.unwrap().unwrap();
    store.record_results(&stale, &[result(1)]).await.unwrap();
    let (_, fresh) = store.claim_batch("b", 111, 140).await.unwrap().unwrap();

    let err = store
        .record_results(&stale, &[result(2)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost), "{name}: {err}");
    let t =
        Transition::new(&[BatchStatus::Validating], BatchStatus::InProgress, 112).fenced(&stale);
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

pub async fn transitions_apply_only_from_the_named_states(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    with_batch(store, "b1").await;
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

/// Two instances (two handles, each with its own connections) claiming
/// from one database at once: every batch is claimed exactly once.
pub async fn instances_race_for_claims(b: &Backend) {
    let name = b.name;
    let other = b.open_again().await;
    for i in 0..6 {
        with_batch(&b.store, &format!("b{i}")).await;
    }
    let claimers = (0..12).map(|i| {
        let store = if i % 2 == 0 {
            b.store.clone()
        } else {
            other.clone()
        };
        async move {
            let mut won = Vec::new();
            while let Some((rec, lease)) = store
                .claim_batch(&format!("inst-{i}"), 100, 200)
                .await
                .unwrap()
            {
                assert_eq!(rec.key, lease.key);
                won.push(lease);
            }
            won
        }
    });
    let leases: Vec<_> = futures::future::join_all(claimers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut per_batch = BTreeMap::new();
    for lease in &leases {
        *per_batch.entry(lease.key.clone()).or_insert(0) += 1;
    }
    assert_eq!(per_batch.len(), 6, "{name}: every batch is claimed");
    assert!(
        per_batch.values().all(|n| *n == 1),
        "{name}: no batch is claimed twice: {per_batch:?}"
    );
    // Each lease holds on either handle.
    for lease in &leases {
        assert!(other.renew_lease(lease, 210).await.unwrap(), "{name}");
    }
}

pub async fn forwarded_batches_are_never_claimed(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    let mut fwd = batch("fwd", "in-fwd");
    fwd.upstream_id = Some("batch_up".into());
    fwd.owner.key_id = Some("k1".into());
    store.upsert_forwarded_batch(&fwd).await.unwrap();
    assert!(
        store.claim_batch("x", 1, 100).await.unwrap().is_none(),
        "{name}: the upstream runs it"
    );
    // A refresh moves its status and counts; ownership stays the first.
    let mut later = fwd.clone();
    later.batch.status = BatchStatus::Completed;
    later.batch.completed_at = Some(9);
    later.batch.request_counts.total = 4;
    later.batch.request_counts.completed = 4;
    later.owner.key_id = Some("someone-else".into());
    store.upsert_forwarded_batch(&later).await.unwrap();
    let got = store.get_batch("fwd").await.unwrap().unwrap();
    assert_eq!(got.batch.status, BatchStatus::Completed, "{name}");
    assert_eq!(got.batch.completed_at, Some(9), "{name}");
    assert_eq!(got.batch.request_counts.completed, 4, "{name}");
    assert_eq!(got.owner.key_id.as_deref(), Some("k1"), "{name}");
    assert_eq!(got.upstream_id.as_deref(), Some("batch_up"), "{name}");
    assert!(got.batch.cost.is_none(), "{name}: no gateway cost");
}

pub async fn finalizing_commits_files_and_status_together(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    with_batch(store, "b1").await;
    let (_, lease) = store.claim_batch("a", 1, 100).await.unwrap().unwrap();
    let mut failed = result(2);
    failed.ok = false;
    store
        .record_results(&lease, &[result(3), failed, result(1)])
        .await
        .unwrap();
    let ok_lines = store.results_page("b1", true, 0, 10).await.unwrap();
    let numbers: Vec<u64> = ok_lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 3], "{name}: in line order");
    assert_eq!(ok_lines[0].1, result(1).line, "{name}");
    let after_one = store.results_page("b1", true, 1, 10).await.unwrap();
    assert_eq!(after_one.len(), 1, "{name}");
    assert_eq!(
        store.results_page("b1", false, 0, 10).await.unwrap().len(),
        1
    );

    let (out, err) = (file("out-b1"), file("err-b1"));
    let to = |from| Transition::new(&[from], BatchStatus::Completed, 50);
    let (_, fresh) = store.claim_batch("b", 101, 200).await.unwrap().unwrap();
    let stale = to(BatchStatus::Validating).fenced(&lease);
    let lost = store
        .finalize_batch("b1", &stale, Some(&out), Some(&err))
        .await;
    assert!(matches!(lost, Err(StoreError::LeaseLost)), "{name}");
    assert!(
        store.get_file("out-b1", 0).await.unwrap().is_none(),
        "{name}"
    );
    // From a state the batch is not in: nothing at all is written.
    let wrong = to(BatchStatus::Finalizing).fenced(&fresh);
    let none = store
        .finalize_batch("b1", &wrong, Some(&out), Some(&err))
        .await;
    assert!(none.unwrap().is_none(), "{name}");
    assert!(
        store.get_file("out-b1", 0).await.unwrap().is_none(),
        "{name}"
    );

    let right = to(BatchStatus::Validating).fenced(&fresh);
    let done = store
        .finalize_batch("b1", &right, Some(&out), Some(&err))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.batch.status, BatchStatus::Completed, "{name}");
    assert_eq!(done.batch.completed_at, Some(50), "{name}");
    assert_eq!(done.batch.output_file_id, Some(out.object.id.clone()));
    assert_eq!(done.batch.error_file_id, Some(err.object.id.clone()));
    assert_eq!(store.get_file("out-b1", 0).await.unwrap(), Some(out));
    assert!(
        store.get_file("err-b1", 0).await.unwrap().is_some(),
        "{name}"
    );
    assert!(
        store.finished_lines("b1").await.unwrap().is_empty(),
        "{name}: the journal now lives in the files"
    );
    assert!(
        !store.renew_lease(&fresh, 300).await.unwrap(),
        "{name}: an ended batch holds no lease"
    );
}

pub async fn lease_holders_name_each_instance_and_its_batches(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    assert!(store.lease_holders(0).await.unwrap().is_empty(), "{name}");
    for key in ["h1", "h2", "h3"] {
        with_batch(store, key).await;
    }
    let claim = |owner: &'static str, until: i64| {
        let store = store.clone();
        async move {
            store
                .claim_batch(owner, 100, until)
                .await
                .unwrap()
                .unwrap()
                .1
        }
    };
    let first = claim("inst-a", 130).await;
    claim("inst-a", 140).await;
    claim("inst-b", 125).await;
    let holder = |owner: &str, batches, lease_until| LeaseHolder {
        owner: owner.into(),
        batches,
        lease_until,
    };
    assert_eq!(
        store.lease_holders(110).await.unwrap(),
        [holder("inst-a", 2, 140), holder("inst-b", 1, 125)],
        "{name}"
    );
    // A lapsed lease is no longer held; a released one neither.
    assert_eq!(
        store.lease_holders(126).await.unwrap(),
        [holder("inst-a", 2, 140)],
        "{name}"
    );
    store.release_lease(&first).await.unwrap();
    assert_eq!(
        store.lease_holders(110).await.unwrap(),
        [holder("inst-a", 1, 140), holder("inst-b", 1, 125)],
        "{name}"
    );
}
