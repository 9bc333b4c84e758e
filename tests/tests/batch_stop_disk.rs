//! A graceful stop and a full disk, against the real binary: SIGTERM lets
//! the upstream calls in flight finish and be journaled, so the restart
//! sends nothing twice; a disk that fills mid-batch stalls the batch (and
//! says so) instead of repeating or losing lines, and it finishes by itself
//! once space is freed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use batchgate_mock_vllm::DEFAULT_MODEL;
use batchgate_tests::{
    assert_error_envelope, assert_every_id_once, chat_lines, config_of_entries, model_entry,
    Gateway, MockConfig, MockVllm,
};

const MODEL: &str = "my-vllm-model";
const CHAT: &str = "/v1/chat/completions";
const WAIT: Duration = Duration::from_secs(180);

async fn gateway(mock_base: &str, parallel: u32) -> Gateway {
    let entry = model_entry(
        MODEL,
        DEFAULT_MODEL,
        mock_base,
        &[("max_parallel_requests", &parallel.to_string())],
    );
    let extra = "batch_settings:\n  lease_seconds: 3600\n  shutdown_grace_seconds: 60\n";
    Gateway::start(&config_of_entries(&[entry], extra))
        .await
        .unwrap()
}

#[tokio::test]
async fn sigterm_mid_batch_resends_nothing() {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(400),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut gw = gateway(&mock.base_url(), 32).await;
    let n: u64 = 600;
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, n as usize))
        .await
        .unwrap();
    let created = gw
        .create_batch(file["id"].as_str().unwrap(), CHAT, "24h")
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    gw.wait_batch_until(id, WAIT, |b| {
        b["request_counts"]["completed"].as_u64() >= Some(64)
    })
    .await
    .unwrap();

    // Calls are in flight (32 at a time, 400 ms each) when SIGTERM lands.
    let status = gw.terminate().await.unwrap();
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    let sent_before = mock.stats().requests;
    assert!(sent_before < n, "the batch ended before the stop");

    gw.restart().await.unwrap();
    let done = gw.wait_batch(id, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n as usize);
    let stats = mock.stats();
    let resent: Vec<_> = stats.by_body.values().filter(|c| **c > 1).collect();
    assert!(
        resent.is_empty(),
        "{} lines sent twice after SIGTERM",
        resent.len()
    );
    assert_eq!(stats.requests, n);
}

struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Option<Tmpfs> {
    std::fs::create_dir_all(dir).ok()?;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Tmpfs(dir.to_path_buf()))
}

/// Writes `path` until the disk refuses more.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [7u8; 256];
    while f.write_all(&small).is_ok() {}
}

#[tokio::test]
async fn a_full_disk_stalls_a_batch_which_finishes_once_space_is_back() {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(20),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut gw = gateway(&mock.base_url(), 16).await;
    // Start again with the data directory on a small file system.
    gw.kill().await.unwrap();
    let Some(_mount) = mount_tmpfs(&gw.data_dir(), "24m") else {
        eprintln!("skipped: this machine does not let the test mount a tmpfs");
        return;
    };
    gw.restart().await.unwrap();

    let n: u64 = 3_000;
    let file = gw
        .upload(MODEL, "in.jsonl", chat_lines(MODEL, n as usize))
        .await
        .unwrap();
    let spare = gw
        .upload(MODEL, "spare.jsonl", chat_lines(MODEL, 50))
        .await
        .unwrap();
    let created = gw
        .create_batch(file["id"].as_str().unwrap(), CHAT, "24h")
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    gw.wait_batch_until(id, WAIT, |b| {
        b["request_counts"]["completed"].as_u64() >= Some(100)
    })
    .await
    .unwrap();

    let filler = gw.data_dir().join("filler");
    fill(&filler);
    // Uploads are refused with a clear error, readiness says why, and the
    // operator can still delete files to make room.
    let (status, body) = gw.get("/health/readiness").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_error_envelope(&body);
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    let refused = gw
        .upload(MODEL, "more.jsonl", chat_lines(MODEL, 2_000))
        .await;
    let text = refused.expect_err("an upload on a full disk").to_string();
    assert!(
        text.contains("507") && text.contains("storage_full"),
        "{text}"
    );
    let spare_id = spare["id"].as_str().unwrap();
    let (status, body) = gw
        .http_delete(&format!("/v1/files/{spare_id}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "delete while full: {body}");

    // Space comes back: the batch finishes by itself, nothing lost or
    // sent twice, no restart needed.
    std::fs::remove_file(&filler).unwrap();
    let done = gw.wait_batch(id, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let (out, err) = gw.results(&done).await.unwrap();
    assert_eq!(err.len(), 0);
    assert_every_id_once(&out, &err, n as usize);
    let stats = mock.stats();
    let most = stats.by_body.values().copied().max().unwrap_or(0);
    assert_eq!(most, 1, "a line went upstream {most} times");
    let (status, _) = gw.get("/health/readiness").await.unwrap();
    assert_eq!(status, 200);
}
