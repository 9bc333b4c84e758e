//! The engine against a store that fails on purpose (claims, journal
//! commits, status moves, lease renewals fail as on a full disk) and a mock
//! upstream that records every call: a failed claim never starts a runner,
//! a failed commit never loses or repeats an answered line, and the batch
//! finishes by itself once the store works again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use batchgate_config::Config;
use batchgate_core::{
    Batch, BatchStatus, CreateBatchRequest, FileApi, FilePurpose, RequestCtx, Upload,
};
use batchgate_engine::{system_clock, Assembly, Engine, Ids, LocalFiles, Parts};
use batchgate_ids::Kind;
use batchgate_mock_vllm::{MockConfig, MockHandle, MockVllm, DEFAULT_MODEL};
use batchgate_store::faulty::{Faults, FaultyStore};
use batchgate_store::{Blobs, SqliteStore};
use batchgate_upstream_openai::OpenAiUpstream;
use futures::StreamExt;

const MODEL: &str = "m";

struct Setup {
    engine: Engine,
    files: LocalFiles,
    ids: Ids,
    faults: Arc<Faults>,
    mock: MockHandle,
    _dir: tempfile::TempDir,
}

async fn setup(parallel: usize) -> Setup {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(5),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let yaml = format!(
        "model_list:\n- model_name: {MODEL}\n  litellm_params:\n    model: hosted_vllm/{DEFAULT_MODEL}\n    api_base: {}\n    max_parallel_requests: {parallel}\n\
         batch_settings:\n  lease_seconds: 3\n  initial_backoff_ms: 10\n",
        mock.base_url()
    );
    let config = Config::from_yaml(&yaml, &["hosted_vllm"], &|_| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("meta.db"))
        .await
        .unwrap();
    let store = FaultyStore::new(Arc::new(sqlite));
    let faults = store.faults.clone();
    let parts = Parts {
        store: Arc::new(store),
        blobs: Blobs::local(&dir.path().join("blobs")).unwrap(),
        id_secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        deployments: config.deployments,
        general: config.general,
        batch: config.batch,
        clock: system_clock(),
    };
    let http = batchgate_upstream_openai::client().unwrap();
    let gateway = Assembly::new(parts, "test-instance".into(), |d| {
        let up = OpenAiUpstream::new(http.clone(), d.clone(), "test", "/health");
        Ok(Arc::new(up) as Arc<dyn batchgate_core::Upstream>)
    })
    .unwrap();
    Setup {
        files: gateway.files().clone(),
        engine: gateway.engine().clone(),
        ids: gateway.ids().clone(),
        faults,
        mock,
        _dir: dir,
    }
}

fn ctx() -> RequestCtx {
    RequestCtx {
        request_id: "req_test".into(),
        caller: batchgate_core::Caller::master(),
    }
}

fn lines(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"custom_id\":\"r{i}\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"model\":\"{MODEL}\",\"messages\":[{{\"role\":\"user\",\"content\":\"line {i}\"}}]}}}}\n"))
        .collect()
}

impl Setup {
    async fn create(&self, n: usize) -> Batch {
        let deployment = self.ids.router().pick(MODEL).unwrap();
        let upload = Upload {
            filename: "in.jsonl".into(),
            purpose: FilePurpose::Batch,
            expires_after: None,
            body: futures::stream::iter([Ok(bytes::Bytes::from(lines(n)))]).boxed(),
        };
        let file = self
            .files
            .create_file(&ctx(), &deployment, upload)
            .await
            .unwrap();
        let input = self.ids.route(Kind::File, &file.id).unwrap();
        let req = CreateBatchRequest {
            input_file_id: file.id.clone(),
            endpoint: "/v1/chat/completions".into(),
            completion_window: "24h".into(),
            metadata: None,
            output_expires_after: None,
        };
        self.engine.create(&ctx(), &input, req).await.unwrap()
    }

    /// Polls the batch until it ends (bounded, generous).
    async fn ended(&self, id: &str) -> Batch {
        let b = self.ids.route(Kind::Batch, id).unwrap();
        let wait = async {
            loop {
                let batch = self.engine.retrieve(&ctx(), &b).await.unwrap();
                if batch.status.is_terminal() {
                    return batch;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(120), wait)
            .await
            .expect("the batch did not end")
    }

    /// Upstream calls per line, and the most any line got.
    fn calls(&self) -> (usize, u64) {
        let stats = self.mock.stats();
        let most = stats.by_body.values().copied().max().unwrap_or(0);
        (stats.by_body.len(), most)
    }
}

#[tokio::test]
async fn failed_claims_start_no_runner() {
    let s = setup(8).await;
    s.faults.claims.store(5, Ordering::Release);
    let batch = s.create(200).await;
    let _supervisor = s.engine.start();
    let done = s.ended(&batch.id).await;
    assert_eq!(done.status, BatchStatus::Completed);
    assert_eq!(done.request_counts.completed, 200);
    assert_eq!(
        s.faults.claims.load(Ordering::Acquire),
        0,
        "the faults were hit"
    );
    assert_eq!(
        s.faults.claims_granted.load(Ordering::Acquire),
        1,
        "one claim, one runner"
    );
    assert_eq!(s.calls(), (200, 1), "every line sent exactly once");
}

#[tokio::test]
async fn failed_journal_commits_lose_and_repeat_nothing() {
    let s = setup(8).await;
    // Commits fail for a while mid-batch: answered lines wait in memory
    // and dispatch stalls; nothing is dropped or sent again.
    s.faults.commits.store(6, Ordering::Release);
    let batch = s.create(300).await;
    let _supervisor = s.engine.start();
    let done = s.ended(&batch.id).await;
    assert_eq!(done.status, BatchStatus::Completed, "{done:?}");
    assert_eq!(done.request_counts.completed, 300);
    assert_eq!(done.request_counts.failed, 0);
    assert_eq!(
        s.faults.commits.load(Ordering::Acquire),
        0,
        "the faults were hit"
    );
    assert_eq!(s.calls(), (300, 1), "every line sent exactly once");
    assert_eq!(s.faults.claims_granted.load(Ordering::Acquire), 1);
}

#[tokio::test]
async fn failed_status_moves_are_retried_without_resending() {
    let s = setup(8).await;
    s.faults.transitions.store(2, Ordering::Release);
    let batch = s.create(50).await;
    let _supervisor = s.engine.start();
    let done = s.ended(&batch.id).await;
    assert_eq!(done.status, BatchStatus::Completed, "{done:?}");
    assert_eq!(done.request_counts.completed, 50);
    assert_eq!(s.calls(), (50, 1), "every line sent exactly once");
}

#[tokio::test]
async fn a_runner_that_cannot_renew_its_lease_stops_and_is_replaced() {
    let s = setup(4).await;
    // Renewals fail long enough for the lease to run out: the runner must
    // stop (it can no longer prove it holds the batch), and a new claim
    // takes over. At most the lines in flight at that moment repeat.
    // The batch's runner and its (at most two) chunk runners renew side by
    // side, so nine failures in a row starve each of them.
    s.faults.renewals.store(9, Ordering::Release);
    let batch = s.create(2_000).await;
    let _supervisor = s.engine.start();
    let done = s.ended(&batch.id).await;
    assert_eq!(done.status, BatchStatus::Completed, "{done:?}");
    assert_eq!(done.request_counts.completed, 2_000);
    let batches = s.faults.claims_granted.load(Ordering::Acquire);
    let chunks = s.faults.chunk_claims_granted.load(Ordering::Acquire);
    // 2,000 lines are 4 chunks of 500: a chunk claimed again means its
    // runner stopped without its lease.
    assert!(
        batches >= 2 || chunks > 4,
        "the runners kept going without a lease ({batches} batch, {chunks} chunk claims)"
    );
    let granted = batches + chunks;
    let (lines, most) = s.calls();
    assert_eq!(lines, 2_000);
    assert!(most <= 2, "a line went upstream {most} times");
    let repeated = s.mock.stats().requests - 2_000;
    assert!(
        repeated <= 4 * granted,
        "{repeated} repeats over {granted} claims, with 4 in flight"
    );
}
