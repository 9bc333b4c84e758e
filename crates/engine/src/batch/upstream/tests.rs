//! `run_line` against upstreams that go down and come back: a refused
//! connection (mock-vllm stopped, then started on the same port) and an
//! upstream answering 503 to everything. Real time and real sockets, so
//! every wait is on an event with a generous bound, never on a duration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use batchgate_config::Router as ModelRouter;
use batchgate_mock_vllm::{MockConfig, MockVllm, DEFAULT_MODEL};
use batchgate_store::LineResult;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::{run_line, Line, RetryPolicy};
use crate::batch::breaker::tests::deployment;
use crate::batch::limits::Limits;
use crate::batch::Upstreams;
use batchgate_upstream_openai::OpenAiUpstream;

const BOUND: Duration = Duration::from_secs(60);
const CHAT: &str = "/v1/chat/completions";

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

/// Replicas of model `m`, one per `(id, api_base)`, pausing after
/// `threshold` outage-type failures.
fn limits(replicas: &[(&str, &str)], threshold: u32) -> Arc<Limits> {
    let deployments = replicas
        .iter()
        .map(|(id, base)| {
            let mut d = (*deployment(id, base)).clone();
            d.served_model = DEFAULT_MODEL.into();
            d
        })
        .collect();
    let router = ModelRouter::new(deployments);
    let http = reqwest::Client::new();
    let upstreams = Upstreams::connect(&router, |d| {
        let up = OpenAiUpstream::new(http.clone(), d.clone(), "test", "/health");
        Ok(Arc::new(up) as Arc<dyn batchgate_core::Upstream>)
    })
    .unwrap();
    Arc::new(Limits::new(&router, &upstreams, threshold, Arc::new(|| 1_000)).unwrap())
}

fn line(i: usize, text: &str) -> Line {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    let Value::Object(body) = body else {
        unreachable!()
    };
    Line {
        number: i as u64,
        custom_id: format!("req-{i}"),
        body,
    }
}

/// Runs each line as the dispatch loop does: a slot, then `run_line`.
/// Returns `(result, id of the replica that served it)`; `None` for a line
/// that gave up because `ended` resolved.
fn spawn_lines(
    limits: &Arc<Limits>,
    lines: Vec<Line>,
    max_attempts: u32,
    ended: impl Future<Output = ()> + Clone + Send + 'static,
) -> JoinSet<Option<(LineResult, String)>> {
    let mut set = JoinSet::new();
    for l in lines {
        let (limits, ended) = (limits.clone(), ended.clone());
        set.spawn(async move {
            // Raced with the end, as the dispatch loop does.
            let slot = tokio::select! {
                s = limits.acquire("m") => s?,
                () = ended.clone() => return None,
            };
            let (r, slot) = run_line(slot, CHAT, l, &policy(max_attempts), ended).await?;
            Some((r, slot.deployment.id.clone()))
        });
    }
    set
}

async fn join_all(
    mut set: JoinSet<Option<(LineResult, String)>>,
) -> Vec<Option<(LineResult, String)>> {
    let all = async {
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.unwrap());
        }
        out
    };
    tokio::time::timeout(BOUND, all)
        .await
        .expect("lines did not end")
}

async fn until_paused(limits: &Limits, id: &str) {
    let wait = async {
        while !limits.paused().iter().any(|p| p.id == id) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(BOUND, wait)
        .await
        .expect("never paused");
}

fn never() -> futures::future::Pending<()> {
    futures::future::pending()
}

#[tokio::test]
async fn a_refused_upstream_pauses_lines_without_spending_attempts() {
    let cfg = MockConfig::default();
    let mock = MockVllm::start(cfg.clone()).await.unwrap();
    let addr = mock.addr();
    let base = mock.base_url();
    mock.shutdown().await;
    let limits = limits(&[("d1", &base)], 2);
    let n = 10;
    // One attempt each: any attempt spent on the outage fails the line.
    let set = spawn_lines(&limits, (0..n).map(|i| line(i, "hi")).collect(), 1, never());
    until_paused(&limits, "d1").await;
    let mock = MockVllm::start_on(cfg, addr).await.unwrap();
    let results = join_all(set).await;
    for r in &results {
        let (r, _) = r.as_ref().expect("no line gives up");
        assert!(r.ok, "{}", r.line);
    }
    let stats = mock.stats();
    assert_eq!(stats.succeeded, n as u64);
    assert_eq!(stats.requests, n as u64, "each line answered exactly once");
    assert!(limits.paused().is_empty());
}

/// An upstream that answers 503 to everything (`/health` included) while
/// `down`, and counts the 200s it gave per message.
#[derive(Debug, Default)]
struct Fake {
    down: AtomicBool,
    ok: Mutex<HashMap<String, u32>>,
    bad: AtomicU32,
}

async fn fake_chat(
    State(f): State<Arc<Fake>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if f.down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "down"})),
        );
    }
    let text = body["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if text.starts_with("bad") {
        f.bad.fetch_add(1, Ordering::SeqCst);
        let e = json!({"error": {"message": "boom", "type": "InternalServerError", "code": 500}});
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(e));
    }
    *f.ok.lock().unwrap().entry(text).or_default() += 1;
    (
        StatusCode::OK,
        Json(json!({"id": "x", "choices": [], "usage": {}})),
    )
}

async fn fake_health(State(f): State<Arc<Fake>>) -> StatusCode {
    if f.down.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn start_fake(down: bool) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    fake.down.store(down, Ordering::SeqCst);
    let app = Router::new()
        .route(CHAT, post(fake_chat))
        .route("/health", get(fake_health))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, base)
}

#[tokio::test]
async fn an_upstream_answering_503_pauses_until_it_recovers() {
    let (fake, base) = start_fake(true).await;
    let limits = limits(&[("d1", &base)], 3);
    let n = 12;
    let lines = (0..n).map(|i| line(i, &format!("line {i}"))).collect();
    let set = spawn_lines(&limits, lines, 1, never());
    until_paused(&limits, "d1").await;
    fake.down.store(false, Ordering::SeqCst);
    for r in join_all(set).await {
        let (r, _) = r.expect("no line gives up");
        assert!(r.ok, "{}", r.line);
    }
    let ok = fake.ok.lock().unwrap().clone();
    assert_eq!(ok.len(), n);
    assert!(ok.values().all(|c| *c == 1), "{ok:?}");
}

#[tokio::test]
async fn a_body_that_fails_alone_spends_its_attempts() {
    let (fake, base) = start_fake(false).await;
    let limits = limits(&[("d1", &base)], 2);
    let mut lines: Vec<_> = (0..6).map(|i| line(i, &format!("good {i}"))).collect();
    lines.push(line(6, "bad one"));
    let results = join_all(spawn_lines(&limits, lines, 3, never())).await;
    let (mut ok, mut failed) = (0, Vec::new());
    for r in results {
        let (r, _) = r.expect("no line gives up");
        if r.ok {
            ok += 1;
        } else {
            failed.push(r);
        }
    }
    assert_eq!(ok, 6);
    assert_eq!(failed.len(), 1);
    let v: Value = serde_json::from_str(&failed[0].line).unwrap();
    assert_eq!(v["custom_id"], "req-6");
    assert_eq!(v["response"]["status_code"], 500, "{v}");
    assert!(limits.paused().is_empty(), "/health answers: no outage");
    assert_eq!(fake.ok.lock().unwrap().values().sum::<u32>(), 6);
    assert_eq!(
        fake.bad.load(Ordering::SeqCst),
        3,
        "one request per attempt"
    );
}

#[tokio::test]
async fn lines_move_off_a_paused_replica_to_one_that_is_up() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (fake, up) = start_fake(false).await;
    let limits = limits(&[("down", &closed), ("up", &up)], 2);
    let n = 16;
    let lines = (0..n).map(|i| line(i, &format!("line {i}"))).collect();
    for r in join_all(spawn_lines(&limits, lines, 1, never())).await {
        let (r, served_by) = r.expect("no line gives up");
        assert!(r.ok, "{}", r.line);
        assert_eq!(served_by, "up");
    }
    assert_eq!(fake.ok.lock().unwrap().len(), n);
    let paused: Vec<_> = limits.paused().into_iter().map(|p| p.id).collect();
    assert_eq!(paused, ["down"]);
}

#[tokio::test]
async fn lines_waiting_for_a_resume_give_up_when_the_batch_ends() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let limits = limits(&[("d1", &closed)], 1);
    let (end, ended) = tokio::sync::watch::channel(false);
    let ended = async move {
        let mut rx = ended;
        let _ = rx.wait_for(|e| *e).await;
    };
    let ended = futures::FutureExt::shared(Box::pin(ended));
    let lines = (0..6).map(|i| line(i, "hi")).collect();
    let set = spawn_lines(&limits, lines, 5, ended);
    until_paused(&limits, "d1").await;
    end.send(true).unwrap();
    let results = join_all(set).await;
    assert!(
        results.iter().all(Option::is_none),
        "unfinished, not failed"
    );
}
