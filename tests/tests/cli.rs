//! The operator CLI (`batchgate submit|batches|files`) as an operator runs
//! it: the real binary, in a non-TTY, against a real gateway in front of
//! mock-vllm. Exit codes: 0 completed clean, 1 completed with failed lines,
//! 2 failed/expired/cancelled, 3 usage or HTTP error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use batchgate_mock_vllm::DEFAULT_MODEL;
use batchgate_tests::{
    binary, chat_lines, config, config_of_entries, model_entry, Gateway, MockConfig, MockHandle,
    MockVllm, MASTER_KEY,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// What one CLI run left behind.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The CLI against `gw`, with the master key from the environment.
fn command(gw: &Gateway, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary("batchgate"));
    cmd.args(args)
        .env("BATCHGATE_BASE_URL", &gw.base)
        .env("BATCHGATE_API_KEY", MASTER_KEY)
        .env_remove("BATCHGATE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn run(gw: &Gateway, args: &[&str]) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(40), command(gw, args).output())
        .await
        .expect("the CLI did not exit in time")
        .expect("run the CLI");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A gateway serving `m` from a default mock.
async fn setup() -> (MockHandle, Gateway) {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::start(&config(&[("m", &mock.base_url())], ""))
        .await
        .unwrap();
    (mock, gw)
}

/// A gateway whose only deployment runs one line at a time, 300 ms each.
async fn slow_setup() -> (MockHandle, Gateway) {
    let mock = MockVllm::start(MockConfig {
        latency: Duration::from_millis(300),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let entry = model_entry(
        "m",
        DEFAULT_MODEL,
        &mock.base_url(),
        &[("max_parallel_requests", "1")],
    );
    let gw = Gateway::start(&config_of_entries(&[entry], ""))
        .await
        .unwrap();
    (mock, gw)
}

fn write_input(dir: &Path, content: &[u8]) -> String {
    let path = dir.join("requests.jsonl");
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json_of(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"))
}

fn batch_id(run: &Run) -> String {
    let id = run
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(id.starts_with("batch_"), "no batch id on stdout: {run:?}");
    id
}

#[tokio::test]
async fn submit_wait_completes_and_downloads_the_output() {
    let (_mock, gw) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &chat_lines("m", 7));
    let out = dir.path().join("results");
    let out_s = out.to_string_lossy().into_owned();
    // No --progress: stderr is a pipe, so the plain lines are chosen.
    let r = run(
        &gw,
        &["submit", &input, "--model", "m", "--wait", "--out", &out_s],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let id = batch_id(&r);
    assert!(
        r.stderr
            .contains(&format!("{id}: completed 7/7 done, 0 failed")),
        "{r:?}"
    );
    assert!(
        !r.stderr.contains('\x1b'),
        "escape codes in a non-TTY: {r:?}"
    );
    let output = lines_of(&out.join(format!("{id}_output.jsonl")));
    assert_eq!(output.len(), 7);
    assert!(output.iter().all(|l| l["response"]["status_code"] == 200));
    assert!(!out.join(format!("{id}_error.jsonl")).exists());
    assert_eq!(gw.batch(&id).await.unwrap()["status"], "completed");
}

#[tokio::test]
async fn submit_with_a_failing_line_exits_1_and_downloads_the_error_file() {
    let (_mock, gw) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let mut content = chat_lines("m", 4);
    // mock-vllm answers 400 to `max_tokens: 0`; the engine does not retry it.
    content.extend_from_slice(
        serde_json::json!({
            "custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}
        })
        .to_string()
        .as_bytes(),
    );
    let input = write_input(dir.path(), &content);
    let out_s = dir.path().to_string_lossy().into_owned();
    let args = [
        "submit",
        &input,
        "--model",
        "m",
        "--wait",
        "--progress",
        "plain",
    ];
    let extra = [
        "--out",
        &out_s,
        "--metadata",
        "team=search",
        "--poll-ms",
        "200",
    ];
    let r = run(&gw, &[&args[..], &extra[..]].concat()).await;
    assert_eq!(r.code, 1, "{r:?}");
    let id = batch_id(&r);
    assert!(
        r.stderr
            .contains(&format!("{id}: completed 5/5 done, 1 failed")),
        "{r:?}"
    );
    let errors = lines_of(&dir.path().join(format!("{id}_error.jsonl")));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["custom_id"], "bad");
    assert_eq!(errors[0]["response"]["status_code"], 400);
    assert_eq!(
        lines_of(&dir.path().join(format!("{id}_output.jsonl"))).len(),
        4
    );
    assert_eq!(gw.batch(&id).await.unwrap()["metadata"]["team"], "search");
}

#[tokio::test]
async fn batches_ls_get_and_cancel() {
    let (_mock, gw) = slow_setup().await;
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &chat_lines("m", 20));
    let r = run(&gw, &["submit", &input, "--model", "m"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let id = batch_id(&r);

    let page = json_of(&run(&gw, &["batches", "ls", "--json"]).await);
    assert_eq!(page["object"], "list", "{page}");
    assert!(page["has_more"].is_boolean(), "{page}");
    assert!(batchgate_tests::list_ids(&page).contains(&id), "{page}");

    let r = run(&gw, &["batches", "ls", "--limit", "5"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let header = r.stdout.lines().next().unwrap_or_default();
    for col in ["ID", "STATUS", "COMPLETED", "FAILED", "TOTAL", "CREATED"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(r.stdout.contains(&id), "{r:?}");

    let r = run(&gw, &["batches", "get", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let status = r
        .stdout
        .lines()
        .find(|l| l.starts_with("status"))
        .unwrap_or_default();
    assert!(
        status.contains("validating") || status.contains("in_progress"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("created_at") && r.stdout.contains('Z'),
        "{r:?}"
    );

    let r = run(&gw, &["batches", "cancel", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("cancelling") || r.stdout.contains("cancelled"),
        "{r:?}"
    );
    let done = gw.wait_batch(&id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(done["status"], "cancelled", "{done}");
    let batch = json_of(&run(&gw, &["batches", "get", &id, "--json"]).await);
    assert_eq!(batch["status"], "cancelled");
    // Cancelling an ended batch is the gateway's 409, shown with exit 3.
    let r = run(&gw, &["batches", "cancel", &id]).await;
    assert_eq!(r.code, 3, "{r:?}");
}

#[tokio::test]
async fn files_ls_get_download_and_rm() {
    let (_mock, gw) = setup().await;
    let content = chat_lines("m", 3);
    let file = gw
        .upload("m", "three.jsonl", content.clone())
        .await
        .unwrap();
    let id = file["id"].as_str().unwrap().to_string();

    let r = run(&gw, &["files", "ls"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let row = r
        .stdout
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_default();
    assert!(
        row.contains("three.jsonl") && row.contains("batch"),
        "{r:?}"
    );
    assert!(row.contains(&content.len().to_string()), "{r:?}");

    let page = json_of(&run(&gw, &["files", "ls", "--purpose", "batch_output", "--json"]).await);
    assert!(!batchgate_tests::list_ids(&page).contains(&id), "{page}");

    let r = run(&gw, &["files", "get", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("three.jsonl") && r.stdout.contains("processed"),
        "{r:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("copy.jsonl");
    let r = run(
        &gw,
        &["files", "download", &id, "-o", &target.to_string_lossy()],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&target).unwrap(), content);
    let r = run(&gw, &["files", "download", &id]).await;
    assert_eq!(r.stdout.as_bytes(), &content[..]);

    let r = run(&gw, &["files", "rm", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("deleted {id}")), "{r:?}");
    let r = run(&gw, &["files", "get", &id]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("404"), "{r:?}");
}

#[tokio::test]
async fn errors_exit_3_with_the_gateway_message() {
    let (_mock, gw) = setup().await;
    let r = run(&gw, &["files", "ls", "--api-key", "sk-wrong"]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("Incorrect API key provided."), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    // Usage errors, a missing input file and an unreachable gateway: 3 too.
    assert_eq!(run(&gw, &["batches", "get"]).await.code, 3);
    let r = run(&gw, &["submit", "/nonexistent.jsonl", "--model", "m"]).await;
    assert_eq!(r.code, 3, "{r:?}");
    let r = run(&gw, &["batches", "ls", "--base-url", "http://127.0.0.1:9"]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("cannot reach"), "{r:?}");
}

/// A `submit --wait` in the background, its stderr read line by line.
struct Waiting {
    child: tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    seen: Vec<String>,
}

impl Waiting {
    /// Starts `submit FILE --wait` of `n` slow lines and returns once the
    /// batch runs.
    async fn start(gw: &Gateway, dir: &Path, n: usize) -> Waiting {
        let input = write_input(dir, &chat_lines("m", n));
        let out = dir.to_string_lossy().into_owned();
        let args = ["submit", &input, "--model", "m", "--wait", "--out", &out];
        let mut child = command(gw, &[&args[..], &["--poll-ms", "100"]].concat())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut w = Waiting {
            child,
            stdout,
            stderr,
            seen: Vec::new(),
        };
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = w.stderr.next_line().await.unwrap() {
                let running = line.contains("in_progress");
                w.seen.push(line);
                if running {
                    return;
                }
            }
            panic!("the CLI ended before the batch ran: {:?}", w.seen);
        })
        .await
        .expect("no in_progress line");
        w
    }

    /// Waits for the exit: (code, batch id, every stderr line).
    async fn finish(mut self) -> (Option<i32>, String, Vec<String>) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the CLI did not exit: {:?}", self.seen))
            .unwrap();
        while let Some(line) = self.stderr.next_line().await.unwrap() {
            self.seen.push(line);
        }
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).await.unwrap();
        let id = out.lines().next().unwrap_or_default().trim().to_string();
        (status.code(), id, self.seen)
    }
}

#[tokio::test]
async fn sigint_while_waiting_cancels_the_batch_and_exits_2() {
    let (_mock, gw) = slow_setup().await;
    let dir = tempfile::tempdir().unwrap();
    let waiting = Waiting::start(&gw, dir.path(), 30).await;
    // stdin is not a TTY: the CLI cancels without asking and keeps waiting.
    let pid = waiting.child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let (code, id, seen) = waiting.finish().await;
    assert_eq!(code, Some(2), "{seen:#?}");
    let last = format!("{id}: cancelled ");
    assert!(seen.iter().any(|l| l.starts_with(&last)), "{seen:#?}");
    let batch = gw.batch(&id).await.unwrap();
    assert_eq!(batch["status"], "cancelled", "{batch}");
    let done = batch["request_counts"]["completed"].as_u64().unwrap();
    assert!(done < 30, "{batch}");
    if done > 0 {
        let output = lines_of(&dir.path().join(format!("{id}_output.jsonl")));
        assert_eq!(output.len() as u64, done);
    }
}

#[tokio::test]
async fn waiting_survives_a_gateway_restart() {
    let (_mock, mut gw) = slow_setup().await;
    let dir = tempfile::tempdir().unwrap();
    let waiting = Waiting::start(&gw, dir.path(), 8).await;
    // A 1 s outage: the CLI keeps polling through it.
    gw.kill().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    gw.restart().await.unwrap();
    let (code, id, seen) = waiting.finish().await;
    assert_eq!(code, Some(0), "{seen:#?}");
    assert!(seen.iter().any(|l| l.contains("poll failed")), "{seen:#?}");
    let last = format!("{id}: completed 8/8 done, 0 failed");
    assert!(seen.iter().any(|l| l.starts_with(&last)), "{seen:#?}");
    assert_eq!(
        lines_of(&dir.path().join(format!("{id}_output.jsonl"))).len(),
        8
    );
}

/// `files download ID | head`: the reader leaving early ends the download
/// quietly, with status 0 and nothing on stderr.
#[tokio::test]
async fn download_into_a_closed_pipe_ends_quietly() {
    let (_mock, gw) = setup().await;
    // Far larger than a pipe's buffer, so the CLI is still writing when the
    // reader goes.
    let content = chat_lines("m", 8_000);
    assert!(content.len() > 1_000_000, "{}", content.len());
    let file = gw.upload("m", "big.jsonl", content).await.unwrap();
    let id = file["id"].as_str().unwrap();
    let mut child = command(&gw, &["files", "download", id]).spawn().unwrap();
    let mut head = [0u8; 100];
    let mut stdout = child.stdout.take().unwrap();
    stdout.read_exact(&mut head).await.unwrap();
    drop(stdout);
    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}
