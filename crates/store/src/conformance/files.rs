//! Files: listings, cursors and ownership, expiry, and deletes racing
//! batch creation.

use batchgate_core::{BatchStatus, Caller, FileObject, FilePurpose, ListOrder};

use super::rows::{batch, file};
use super::{caller, with_batch, Backend};
use crate::{Deleted, FileFilter, FileRecord, MetaStore, Owner, Page, Transition};

pub async fn deleting_an_input_and_creating_its_batch_never_both_win(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    for round in 0..20 {
        let input = format!("in-{round}");
        store.insert_file(&file(&input)).await.unwrap();
        let bt = batch(&format!("b{round}"), &input);
        let (created, deleted) = tokio::join!(store.insert_batch(&bt), store.delete_file(&input));
        let created = created.unwrap();
        match deleted.unwrap() {
            Deleted::Removed(_) => {
                assert!(!created, "{name}: a batch was created over a deleted input");
                assert!(store.get_batch(&bt.key).await.unwrap().is_none(), "{name}");
            }
            Deleted::InUse => {
                assert!(created, "{name}");
                assert!(store.get_file(&input, 0).await.unwrap().is_some(), "{name}");
            }
            Deleted::Missing => panic!("{name}: the file existed"),
        }
    }
}

pub async fn a_batch_keeps_its_input_until_it_ends(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    with_batch(store, "b1").await;
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

fn keys(page: &Page<FileRecord>) -> Vec<String> {
    page.items.iter().map(|f| f.key.clone()).collect()
}

pub async fn listings_page_by_cursor_and_hide_other_owners(b: &Backend) {
    let (name, store) = (b.name, &b.store);
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

fn dated(key: &str, created_at: i64, purpose: FilePurpose, expires_at: Option<i64>) -> FileRecord {
    let mut object = FileObject::new(&format!("file-{key}"), 3, created_at, "a.jsonl", purpose);
    object.expires_at = expires_at;
    FileRecord {
        key: key.to_string(),
        object,
        deployment_id: "dep".into(),
        model_name: "m".into(),
        blob_path: Some(format!("files/{key}")),
        upstream_id: None,
        owner: Owner::default(),
    }
}

async fn page_after(
    store: &dyn MetaStore,
    filter: &FileFilter,
    after: Option<&str>,
    order: ListOrder,
) -> Page<FileRecord> {
    store.list_files(filter, after, 10, order).await.unwrap()
}

/// Rows survive a reopen; listings page both ways past live, expired and
/// deleted cursors.
pub async fn files_persist_list_paginate_and_expire(b: &Backend) {
    let name = b.name;
    for i in 0..5 {
        let f = dated(&format!("k{i}"), 100 + i, FilePurpose::Batch, None);
        b.store.insert_file(&f).await.unwrap();
    }
    let old = dated("old", 50, FilePurpose::UserData, Some(60));
    b.store.insert_file(&old).await.unwrap();

    let store = b.open_again().await;
    let filter = FileFilter {
        caller: Caller::master(),
        now: 1000,
        ..Default::default()
    };
    let first = store
        .list_files(&filter, None, 2, ListOrder::Desc)
        .await
        .unwrap();
    assert_eq!(keys(&first), ["k4", "k3"], "{name}");
    assert!(first.has_more, "{name}");
    let rest = page_after(&*store, &filter, Some("k3"), ListOrder::Desc).await;
    assert_eq!(
        keys(&rest),
        ["k2", "k1", "k0"],
        "{name}: the expired file is not listed"
    );
    assert!(!rest.has_more, "{name}");
    let done = page_after(&*store, &filter, Some("k0"), ListOrder::Desc).await;
    assert!(done.items.is_empty(), "{name}");
    let asc = page_after(&*store, &filter, Some("k3"), ListOrder::Asc).await;
    assert_eq!(asc.items.len(), 1, "{name}");

    assert!(
        store.get_file("old", 1000).await.unwrap().is_none(),
        "{name}"
    );
    let expired = store.take_expired_files(1000, 10).await.unwrap();
    assert_eq!(expired.len(), 1, "{name}");
    match store.delete_file("k1").await.unwrap() {
        Deleted::Removed(f) => assert_eq!(f.key, "k1", "{name}"),
        other => panic!("{name}: {other:?}"),
    }
    assert_eq!(store.delete_file("k1").await.unwrap(), Deleted::Missing);
    assert!(store.get_file("k1", 0).await.unwrap().is_none(), "{name}");

    // Paging past a cursor that was deleted in the meantime goes on.
    store.delete_file("k2").await.unwrap();
    let after_deleted = page_after(&*store, &filter, Some("k2"), ListOrder::Desc).await;
    assert_eq!(keys(&after_deleted), ["k0"], "{name}");
}

pub async fn listings_respect_team_ownership(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    let mut mine = dated("mine", 1, FilePurpose::Batch, None);
    mine.owner = Owner {
        key_id: Some("key-a".into()),
        team_id: Some("team-1".into()),
    };
    let mut theirs = dated("theirs", 2, FilePurpose::Batch, None);
    theirs.owner = Owner {
        key_id: Some("key-b".into()),
        team_id: Some("team-2".into()),
    };
    store.insert_file(&mine).await.unwrap();
    store.insert_file(&theirs).await.unwrap();
    let filter = FileFilter {
        caller: caller("key-c", Some("team-1")),
        now: 0,
        ..Default::default()
    };
    let page = page_after(&**store, &filter, None, ListOrder::Desc).await;
    assert_eq!(keys(&page), ["mine"], "{name}");
}

fn owned_by(key: &str, owner: &str) -> FileRecord {
    let mut f = dated(key, 1, FilePurpose::Batch, None);
    f.blob_path = None;
    f.owner = Owner {
        key_id: Some(format!("key-{owner}")),
        team_id: Some(format!("team-{owner}")),
    };
    f
}

fn owner_filter(owner: &str) -> FileFilter {
    FileFilter {
        caller: caller(&format!("key-{owner}"), Some(&format!("team-{owner}"))),
        ..Default::default()
    }
}

/// A file another owner holds (live or deleted) is no cursor at all for
/// the caller: paging from it looks like paging from an unknown ID.
pub async fn foreign_cursors_page_like_unknown_ones(b: &Backend) {
    let (name, store) = (b.name, &*b.store);
    for (key, owner) in [
        ("a1", "a"),
        ("b1", "b"),
        ("a2", "a"),
        ("b2", "b"),
        ("a3", "a"),
    ] {
        store.insert_file(&owned_by(key, owner)).await.unwrap();
    }
    let (alice, bob) = (owner_filter("a"), owner_filter("b"));
    let after = |who: &FileFilter, cursor: &'static str| {
        let who = who.clone();
        async move { keys(&page_after(store, &who, Some(cursor), ListOrder::Asc).await) }
    };
    assert_eq!(after(&alice, "a1").await, ["a2", "a3"], "{name}");
    assert!(after(&alice, "b1").await.is_empty(), "{name}");
    assert!(after(&alice, "nope").await.is_empty(), "{name}");

    store.delete_file("b1").await.unwrap();
    assert!(
        after(&alice, "b1").await.is_empty(),
        "{name}: another owner's tombstone is no cursor"
    );
    assert_eq!(after(&bob, "b1").await, ["b2"], "{name}: its owner's is");
    let master = FileFilter {
        caller: Caller::master(),
        ..Default::default()
    };
    assert_eq!(after(&master, "b1").await, ["a2", "b2", "a3"], "{name}");
}

pub async fn expiry_spares_the_inputs_of_running_batches(b: &Backend) {
    let (name, store) = (b.name, &b.store);
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

pub async fn batch_listings_filter_by_model(b: &Backend) {
    let (name, store) = (b.name, &b.store);
    for (k, model) in [("b1", "m"), ("b2", "other"), ("b3", "m")] {
        store.insert_file(&file(&format!("in-{k}"))).await.unwrap();
        let mut bt = batch(k, &format!("in-{k}"));
        bt.batch.model = Some(model.into());
        assert!(store.insert_batch(&bt).await.unwrap());
    }
    let master = Caller::master();
    let keys = |p: Page<crate::BatchRecord>| p.items.into_iter().map(|b| b.key).collect::<Vec<_>>();
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
