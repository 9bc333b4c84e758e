//! The embedded store on a disk that fills up and frees again: a claim
//! whose write did not persist is never a claim, errors say the storage is
//! full, and once space is back the store works again by itself (no
//! transaction or lock left behind). Runs on a small tmpfs, which needs
//! root and permission to mount; where that is refused it says so and
//! checks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use batchgate_core::ApiError;
use batchgate_store::conformance::rows::{batch, file};
use batchgate_store::{BatchStore, FileStore, LineResult, SqliteStore};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the disk refuses more.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [7u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

fn big_results(from: u64, n: u64) -> Vec<LineResult> {
    (from..from + n)
        .map(|i| LineResult {
            line_no: i,
            custom_id: format!("c{i}"),
            ok: true,
            line: "x".repeat(16 * 1024),
            usage: None,
            charge: None,
        })
        .collect()
}

#[tokio::test]
async fn a_full_disk_never_fakes_a_claim_and_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Tmpfs::mount(dir.path(), "3m") else {
        eprintln!("skipped: this machine does not let the test mount a tmpfs");
        return;
    };
    let store = SqliteStore::open(&dir.path().join("meta.db"))
        .await
        .unwrap();
    for i in 0..40 {
        let key = format!("b{i}");
        store
            .insert_file(&file(&format!("in-{key}")))
            .await
            .unwrap();
        assert!(store
            .insert_batch(&batch(&key, &format!("in-{key}")))
            .await
            .unwrap());
    }
    let filler = dir.path().join("filler");
    fill(&filler);

    // Claims on the full disk: every one returned is a distinct batch (a
    // claim that did not persist would hand the same batch out again).
    let mut claimed = std::collections::HashSet::new();
    let mut full_errors = 0;
    for round in 0..200 {
        match store.claim_batch("inst", 100 + round, 1_000).await {
            Ok(Some((rec, lease))) => {
                assert!(
                    claimed.insert(rec.key.clone()),
                    "{} handed out twice",
                    rec.key
                );
                // Journal writes on the full disk fail cleanly, as "full".
                if let Err(e) = store.record_results(&lease, &big_results(1, 64)).await {
                    assert!(e.is_storage_full(), "{e}");
                    let api: ApiError = e.into();
                    assert_eq!(api.status, 507);
                    assert_eq!(api.body.code.as_deref(), Some("storage_full"));
                    full_errors += 1;
                }
            }
            Ok(None) => {}
            Err(e) => {
                assert!(e.is_storage_full(), "{e}");
                full_errors += 1;
            }
        }
    }
    assert!(full_errors > 0, "the disk never filled up");

    // Space comes back: without a restart, every kind of write works again.
    std::fs::remove_file(&filler).unwrap();
    store.insert_file(&file("after")).await.unwrap();
    let (rec, lease) = store
        .claim_batch("inst2", 10_000, 20_000)
        .await
        .unwrap()
        .expect("unclaimed batches remain");
    assert!(!claimed.contains(&rec.key));
    store
        .record_results(&lease, &big_results(1, 8))
        .await
        .unwrap();
    assert_eq!(store.finished_lines(&rec.key).await.unwrap().len(), 8);
    assert!(matches!(
        store.delete_file("after").await.unwrap(),
        batchgate_store::Deleted::Removed(_)
    ));
}
