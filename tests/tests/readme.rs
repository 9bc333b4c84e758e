//! The README works as written: every ```sh block in it runs, in order,
//! against `cargo xtask quickstart` (started here, on free ports), from a
//! directory holding only the README's `examples/`. The quickstart must
//! also stop the mock and the gateway it started on SIGTERM and SIGHUP, and
//! a second run must start without compiling anything.
//!
//! What the test changes in a block, and only this: `localhost:4000`
//! becomes the quickstart's port; the IDs the README leaves to the reader
//! (`file-…`, `batch_…`) become the ones the earlier blocks printed;
//! `cargo install --locked --path crates/batchgate` is skipped and `target/debug`
//! put on `PATH` instead (the same binary, without a release build). Two
//! blocks are not run: `cargo xtask quickstart` (this test runs it) and
//! the `cargo run --release` that points the gateway at a real vLLM. A new
//! block the test does not know how to run fails it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use batchgate_tests::{binary, cargo_command, free_port, workspace_root, MASTER_KEY};
use serde_json::Value;

/// The first `cargo run -p xtask` may have to compile xtask.
const FIRST_START: Duration = Duration::from_secs(900);

/// The fenced blocks of `markdown` whose info string is `lang`.
fn blocks(markdown: &str, lang: &str) -> Vec<String> {
    let (mut out, mut current): (Vec<String>, Option<String>) = (Vec::new(), None);
    for line in markdown.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) if info.trim() == lang => current = Some(String::new()),
            (Some(_), Some("")) => out.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// `cargo xtask quickstart` as a child process, its stdout lines on a
/// channel and its stderr collected.
struct Quickstart {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    ports: [u16; 2],
}

impl Quickstart {
    /// Starts it and waits for its "serving" line.
    fn start(port: u16, mock_port: u16, data_dir: &Path, patience: Duration) -> Quickstart {
        let mut child = cargo_command()
            .args(["run", "-p", "xtask", "--", "quickstart"])
            .args([
                "--port",
                &port.to_string(),
                "--mock-port",
                &mock_port.to_string(),
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut qs = Quickstart {
            child,
            lines,
            stderr: Some(stderr),
            ports: [port, mock_port],
        };
        qs.wait_for("is serving on", patience);
        qs
    }

    fn wait_for(&mut self, text: &str, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(e) => panic!("the quickstart never printed {text:?} ({e})"),
            }
        }
    }

    /// Sends `signal`, waits for the quickstart to end and for both ports
    /// to be free again; returns what it wrote to stderr.
    fn stop_with(mut self, signal: &str) -> String {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the quickstart ignored {signal}");
            std::thread::sleep(Duration::from_millis(100));
        }
        for port in self.ports {
            assert!(
                TcpStream::connect(("127.0.0.1", port)).is_err(),
                "after {signal}, something still listens on {port}"
            );
        }
        self.stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }
}

/// A test that fails half-way still stops the quickstart, which stops its
/// children: SIGTERM, then SIGKILL if it lingers.
impl Drop for Quickstart {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the blocks printed that later blocks refer to.
#[derive(Debug, Default)]
struct Seen {
    file_id: Option<String>,
    batch_id: Option<String>,
    output_lines: Vec<Value>,
}

impl Seen {
    /// Records the JSON values a block printed (curl prints one document
    /// per call, without a newline; file content is JSONL).
    fn record(&mut self, stdout: &str) {
        for value in serde_json::Deserializer::from_str(stdout).into_iter::<Value>() {
            let Ok(v) = value else { break };
            match v["object"].as_str() {
                Some("file") if v["purpose"] == "batch" => self.file_id = id_of(&v),
                Some("batch") => self.batch_id = id_of(&v),
                _ if v["custom_id"].is_string() => self.output_lines.push(v),
                _ => {}
            }
        }
    }
}

fn id_of(v: &Value) -> Option<String> {
    v["id"].as_str().map(str::to_string)
}

/// The batch's output file ID, once it has completed.
async fn output_file_of(base: &str, batch_id: &str) -> String {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b: Value = http
            .get(format!("{base}/v1/batches/{batch_id}"))
            .bearer_auth(MASTER_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if b["status"] == "completed" {
            return b["output_file_id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "batch never completed: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The block as the test runs it (see the module docs), or why not.
async fn script_of(block: &str, port: u16, seen: &Seen) -> Result<String, &'static str> {
    if block.contains("cargo xtask quickstart") {
        return Err("this test runs the quickstart itself, and `cargo xtask ci` runs this test");
    }
    if block.starts_with("cargo run --release -p batchgate") {
        return Err("it points the gateway at a real vLLM");
    }
    let mut script = String::new();
    for line in block.lines() {
        if line.starts_with("cargo install --locked --path crates/batchgate") {
            script.push_str(": the test puts target/debug on PATH instead\n");
        } else {
            script.push_str(line);
            script.push('\n');
        }
    }
    let mut script = script.replace("localhost:4000", &format!("localhost:{port}"));
    let need = |id: &Option<String>, what: &str| {
        id.clone()
            .unwrap_or_else(|| panic!("a block needs the {what}, but no earlier block printed it"))
    };
    if script.contains("files/file-…/content") {
        let batch = need(&seen.batch_id, "batch ID");
        let output = output_file_of(&format!("http://127.0.0.1:{port}"), &batch).await;
        script = script.replace("files/file-…/content", &format!("files/{output}/content"));
    }
    if script.contains("\"input_file_id\": \"file-…\"") {
        let file = need(&seen.file_id, "uploaded file ID");
        script = script.replace("file-…", &file);
    }
    if script.contains("batches/batch_…") {
        let batch = need(&seen.batch_id, "batch ID");
        script = script.replace("batches/batch_…", &format!("batches/{batch}"));
    }
    assert!(
        !script.contains('…'),
        "a README block has a placeholder this test cannot fill:\n{script}"
    );
    Ok(script)
}

/// A directory holding what the README's commands read: `examples/`.
fn fresh_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples");
    std::fs::create_dir(&examples).unwrap();
    for entry in std::fs::read_dir(workspace_root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, examples.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn run_block(script: &str, cwd: &Path, port: u16) -> String {
    let bin_dir: PathBuf = binary("batchgate").parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(cwd)
        .env("PATH", path)
        // The CLI's default is the README's :4000; the test's gateway is elsewhere.
        .env("BATCHGATE_BASE_URL", format!("http://127.0.0.1:{port}"))
        .env_remove("BATCHGATE_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "README block failed ({}):\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_runs_against_the_quickstart() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let sh = blocks(&readme, "sh");
    assert!(sh.len() >= 6, "found only {} sh blocks", sh.len());
    let (port, mock_port) = (free_port().unwrap(), free_port().unwrap());
    let data = tempfile::tempdir().unwrap();
    let qs = Quickstart::start(port, mock_port, data.path(), FIRST_START);

    let cwd = fresh_dir();
    let mut seen = Seen::default();
    for block in &sh {
        match script_of(block, port, &seen).await {
            Ok(script) => seen.record(&run_block(&script, cwd.path(), port)),
            Err(why) => eprintln!("not run ({why}):\n{block}"),
        }
    }
    assert!(
        seen.file_id.is_some() && seen.batch_id.is_some(),
        "{seen:?}"
    );
    let mut ids: Vec<_> = seen
        .output_lines
        .iter()
        .map(|l| l["custom_id"].clone())
        .collect();
    ids.sort_by_key(|v| v.to_string());
    assert_eq!(ids, ["request-1", "request-2"], "{seen:?}");
    assert!(seen
        .output_lines
        .iter()
        .all(|l| l["response"]["status_code"] == 200));
    // `batchgate submit ... --out results/` downloaded the output there.
    let results: Vec<_> = std::fs::read_dir(cwd.path().join("results"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        results.iter().any(|n| n.ends_with("_output.jsonl")),
        "{results:?}"
    );

    let stderr = qs.stop_with("TERM");
    assert!(stderr.contains("SIGTERM: stopping"), "{stderr}");

    // Again, on the same data: nothing to compile, and SIGHUP (the
    // terminal closing) stops it as well.
    let started = Instant::now();
    let qs = Quickstart::start(port, mock_port, data.path(), Duration::from_secs(120));
    let took = started.elapsed();
    let stderr = qs.stop_with("HUP");
    let compiled: Vec<_> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("Compiling"))
        .collect();
    assert!(compiled.is_empty(), "the second run compiled: {compiled:?}");
    eprintln!("second quickstart run serving after {took:?}");
}
