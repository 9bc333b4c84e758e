//! Listing cursors obey ownership: a file another owner holds (live or
//! deleted) is no cursor at all for the caller.

#![allow(clippy::unwrap_used)]

use batchgate_core::{Caller, FileObject, FilePurpose, ListOrder};

use super::SqliteStore;
use crate::{FileFilter, FileRecord, FileStore, Owner};

fn file(key: &str, seq_hint: i64, owner: &str) -> FileRecord {
    FileRecord {
        key: key.to_string(),
        object: FileObject::new(
            &format!("file-{key}"),
            1,
            seq_hint,
            "a.jsonl",
            FilePurpose::Batch,
        ),
        deployment_id: "dep".into(),
        model_name: "m".into(),
        blob_path: None,
        upstream_id: None,
        owner: Owner {
            key_id: Some(format!("key-{owner}")),
            team_id: Some(format!("team-{owner}")),
        },
    }
}

fn caller(owner: &str) -> FileFilter {
    FileFilter {
        caller: Caller {
            key_id: Some(format!("key-{owner}")),
            team_id: Some(format!("team-{owner}")),
            is_master: false,
            models: vec![],
        },
        ..Default::default()
    }
}

async fn keys_after(store: &SqliteStore, who: &FileFilter, after: &str) -> Vec<String> {
    let page = store
        .list_files(who, Some(after), 10, ListOrder::Asc)
        .await
        .unwrap();
    page.items.into_iter().map(|f| f.key).collect()
}

#[tokio::test]
async fn foreign_cursors_page_like_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("m.db")).await.unwrap();
    for (key, owner) in [
        ("a1", "a"),
        ("b1", "b"),
        ("a2", "a"),
        ("b2", "b"),
        ("a3", "a"),
    ] {
        store.insert_file(&file(key, 1, owner)).await.unwrap();
    }
    let (alice, bob) = (caller("a"), caller("b"));
    assert_eq!(keys_after(&store, &alice, "a1").await, ["a2", "a3"]);
    assert!(keys_after(&store, &alice, "b1").await.is_empty());
    assert!(keys_after(&store, &alice, "nope").await.is_empty());

    store.delete_file("b1").await.unwrap();
    assert!(
        keys_after(&store, &alice, "b1").await.is_empty(),
        "another owner's tombstone is no cursor"
    );
    assert_eq!(
        keys_after(&store, &bob, "b1").await,
        ["b2"],
        "its owner's is"
    );
    let master = FileFilter {
        caller: Caller::master(),
        ..Default::default()
    };
    assert_eq!(keys_after(&store, &master, "b1").await, ["a2", "b2", "a3"]);
}
