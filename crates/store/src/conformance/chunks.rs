//! Chunks: planned once under the batch's lease, claimed by one instance
//! at a time, taken over once their lease lapses, and every journal write
//! of a chunk runner fenced by its chunk's lease.

use std::collections::BTreeMap;

use batchgate_core::BatchStatus;

use super::{result, with_batch, Backend};
use crate::{Chunk, Lease, StoreError, Transition};

/// `n` chunks of 10 lines each (offsets as if every line were 100 bytes).
fn plan(n: u64) -> Vec<Chunk> {
    (0..n)
        .map(|i| Chunk {
            number: i,
            first_line: i * 10 + 1,
            end_line: i * 10 + 11,
            offset: i * 1000,
        })
        .collect()
}

/// Batch `key`, claimed by `holder`, planned into `n` chunks and moved to
/// `in_progress`; returns the batch lease.
async fn running(b: &Backend, key: &str, holder: &str, n: u64) -> Lease {
    with_batch(&b.store, key).await;
    let (_, lease) = loop {
        // Earlier batches of the test may be claimable too.
        let (rec, lease) = b
            .store
            .claim_batch(holder, 1, 10_000)
            .await
            .unwrap()
            .unwrap();
        if rec.key == key {
            break (rec, lease);
        }
    };
    b.store.plan_chunks(&lease, &plan(n)).await.unwrap();
    let t = Transition::new(&[BatchStatus::Validating], BatchStatus::InProgress, 2)
        .with_total(n * 10)
        .fenced(&lease);
    b.store.transition(key, &t).await.unwrap().unwrap();
    lease
}

pub async fn chunks_are_planned_once_and_claimed_only_while_running(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    with_batch(store, "b1").await;
    let (_, lease) = store.claim_batch("a", 1, 100).await.unwrap().unwrap();
    store.plan_chunks(&lease, &plan(3)).await.unwrap();
    // Planned again (a re-validation after a crash): the first plan stays.
    store.plan_chunks(&lease, &plan(5)).await.unwrap();
    let p = store.chunk_progress("b1", 1).await.unwrap();
    assert_eq!((p.total, p.done, p.leased), (3, 0, 0), "{name}: {p:?}");
    assert!(
        store.claim_chunk("x", 1, 100, 99).await.unwrap().is_none(),
        "{name}: a validating batch's chunks wait"
    );
    let t = Transition::new(&[BatchStatus::Validating], BatchStatus::InProgress, 2)
        .with_total(30)
        .fenced(&lease);
    store.transition("b1", &t).await.unwrap().unwrap();
    let (rec, chunk, cl) = store.claim_chunk("x", 1, 100, 99).await.unwrap().unwrap();
    assert_eq!(rec.key, "b1", "{name}");
    assert_eq!(rec.batch.status, BatchStatus::InProgress, "{name}");
    assert_eq!(chunk, plan(3)[0], "{name}: oldest batch, first chunk first");
    assert_eq!((cl.key.as_str(), cl.chunk), ("b1", Some(0)), "{name}");
    // A plan under a lease that lost the batch is refused.
    let (_, fresh) = store.claim_batch("b", 101, 200).await.unwrap().unwrap();
    let err = store.plan_chunks(&lease, &plan(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost), "{name}: {err}");
    store.revoke_chunks(&fresh).await.unwrap();
    assert!(
        !store.renew_chunk(&cl, 150).await.unwrap(),
        "{name}: a revoked chunk lease is gone"
    );
    let err = store.record_results(&cl, &[result(1)]).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost), "{name}: {err}");
    let err = store.revoke_chunks(&lease).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost), "{name}: {err}");
}

/// Two instances (two handles) claiming chunks at once: every chunk is
/// claimed exactly once, and each claim holds on either handle.
pub async fn instances_race_for_chunks(b: &Backend) {
    let name = b.name;
    let other = b.open_again().await;
    running(b, "b1", "a", 8).await;
    let claimers = (0..12).map(|i| {
        let store = if i % 2 == 0 {
            b.store.clone()
        } else {
            other.clone()
        };
        async move {
            let mut won = Vec::new();
            while let Some((_, chunk, lease)) = store
                .claim_chunk(&format!("inst-{i}"), 100, 200, 99)
                .await
                .unwrap()
            {
                assert_eq!(lease.chunk, Some(chunk.number));
                won.push(lease);
            }
            won
        }
    });
    let leases: Vec<Lease> = futures::future::join_all(claimers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut per_chunk = BTreeMap::new();
    for lease in &leases {
        *per_chunk.entry(lease.chunk).or_insert(0) += 1;
    }
    assert_eq!(per_chunk.len(), 8, "{name}: every chunk is claimed");
    assert!(
        per_chunk.values().all(|n| *n == 1),
        "{name}: no chunk is claimed twice: {per_chunk:?}"
    );
    for lease in &leases {
        assert!(other.renew_chunk(lease, 210).await.unwrap(), "{name}");
    }
    let p = b.store.chunk_progress("b1", 205).await.unwrap();
    assert_eq!((p.total, p.done, p.leased), (8, 0, 8), "{name}: {p:?}");
}

/// An instance takes at most `per_batch` chunks of one batch, leaving the
/// rest to the others, and then goes on to the next batch.
pub async fn an_instance_takes_a_bounded_share_of_each_batch(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    running(b, "b1", "holder", 4).await;
    running(b, "b2", "holder", 4).await;
    let mut got = Vec::new();
    while let Some((rec, chunk, _)) = store.claim_chunk("a", 100, 200, 2).await.unwrap() {
        got.push((rec.key, chunk.number));
    }
    let want = [("b1", 0), ("b1", 1), ("b2", 0), ("b2", 1)].map(|(k, n)| (k.to_string(), n));
    assert_eq!(got, want, "{name}");
    let (rec, chunk, lease) = store.claim_chunk("b", 100, 200, 2).await.unwrap().unwrap();
    assert_eq!((rec.key.as_str(), chunk.number), ("b1", 2), "{name}");
    // A finished chunk no longer counts against its owner's share.
    store.finish_chunk(&lease).await.unwrap();
    store.claim_chunk("b", 100, 200, 2).await.unwrap().unwrap();
    let (rec, chunk, _) = store.claim_chunk("b", 100, 200, 2).await.unwrap().unwrap();
    assert_eq!((rec.key.as_str(), chunk.number), ("b2", 2), "{name}");
}

/// A chunk whose runner stopped is taken over once its lease lapses; the
/// stale runner can then write, renew and finish nothing, and every line
/// counts once across both runners.
pub async fn a_stale_chunk_lease_can_never_write(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    running(b, "b1", "holder", 2).await;
    let (_, _, stale) = store.claim_chunk("a", 100, 110, 99).await.unwrap().unwrap();
    store
        .record_results(&stale, &[result(1), result(2)])
        .await
        .unwrap();
    // Before the lease lapses nobody else gets this chunk (only the other).
    let (_, second, _) = store.claim_chunk("b", 105, 200, 99).await.unwrap().unwrap();
    assert_eq!(second.number, 1, "{name}");
    assert!(store
        .claim_chunk("b", 105, 200, 99)
        .await
        .unwrap()
        .is_none());
    let (_, chunk, fresh) = store.claim_chunk("b", 111, 200, 99).await.unwrap().unwrap();
    assert_eq!(chunk.number, 0, "{name}: taken over after the lapse");
    assert!(fresh.epoch > stale.epoch, "{name}: epoch grows");

    let err = store
        .record_results(&stale, &[result(3)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost), "{name}: {err}");
    assert!(!store.renew_chunk(&stale, 300).await.unwrap(), "{name}");
    let err = store.finish_chunk(&stale).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost), "{name}: {err}");
    store.release_chunk(&stale, None).await.unwrap();
    assert!(store.renew_chunk(&fresh, 210).await.unwrap(), "{name}");

    // The new runner redoes what it finds unjournaled: lines 1 and 2 stay
    // as the first runner wrote them and count once.
    let mut left = store.finished_lines_in("b1", 1, 11).await.unwrap();
    left.sort_unstable();
    assert_eq!(left, [1, 2], "{name}");
    assert!(store
        .finished_lines_in("b1", 11, 21)
        .await
        .unwrap()
        .is_empty());
    let all: Vec<_> = (1..=10).map(result).collect();
    store.record_results(&fresh, &all).await.unwrap();
    store.finish_chunk(&fresh).await.unwrap();
    let rec = store.get_batch("b1").await.unwrap().unwrap();
    assert_eq!(rec.batch.request_counts.completed, 10, "{name}");
    let p = store.chunk_progress("b1", 150).await.unwrap();
    assert_eq!((p.total, p.done, p.leased), (2, 1, 1), "{name}: {p:?}");
    assert!(
        store
            .claim_chunk("c", 500, 600, 99)
            .await
            .unwrap()
            .is_some(),
        "{name}: chunk 1 lapsed; chunk 0 is done and never claimed again"
    );
    assert!(store
        .claim_chunk("c", 500, 600, 99)
        .await
        .unwrap()
        .is_none());
}

/// A released chunk is free at once; an instance restarting frees its
/// chunks; ending the batch drops its chunks with its journal.
pub async fn chunks_are_released_and_end_with_their_batch(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    let lease = running(b, "b1", "holder", 2).await;
    let (_, c0, l0) = store
        .claim_chunk("a", 100, 1000, 99)
        .await
        .unwrap()
        .unwrap();
    store.release_chunk(&l0, None).await.unwrap();
    let (_, again, l1) = store
        .claim_chunk("b", 101, 1000, 99)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, c0, "{name}: a released chunk is claimed at once");
    let (_, _, l2) = store
        .claim_chunk("b", 101, 1000, 99)
        .await
        .unwrap()
        .unwrap();
    store.release_leases("b").await.unwrap();
    assert!(!store.renew_chunk(&l1, 1000).await.unwrap(), "{name}");
    assert!(!store.renew_chunk(&l2, 1000).await.unwrap(), "{name}");
    let p = store.chunk_progress("b1", 102).await.unwrap();
    assert_eq!(p.leased, 0, "{name}: {p:?}");
    // Parked until 150: nobody runs it (not leased), nobody claims it.
    let claim = |at| store.claim_chunk("c", at, 1000, 99);
    let (_, first, parked) = claim(102).await.unwrap().unwrap();
    assert_eq!(first, c0, "{name}");
    store.release_chunk(&parked, Some(150)).await.unwrap();
    assert_eq!(store.chunk_progress("b1", 102).await.unwrap().leased, 0);
    let (_, other, _) = claim(102).await.unwrap().unwrap();
    assert_ne!(other, c0, "{name}: a parked chunk waits");
    assert!(claim(102).await.unwrap().is_none(), "{name}");
    let (_, again, _) = claim(151).await.unwrap().unwrap();
    assert_eq!(again, c0, "{name}: claimable once its park ends");

    let t = Transition::new(&[BatchStatus::InProgress], BatchStatus::Cancelled, 5).fenced(&lease);
    store
        .finalize_batch("b1", &t, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.chunk_progress("b1", 102).await.unwrap().total,
        0,
        "{name}: the chunks ended with the batch"
    );
    assert!(store
        .claim_chunk("c", 200, 300, 99)
        .await
        .unwrap()
        .is_none());
}
