//! Child processes: nested `cargo` runs ([`cargo`]), the release build,
//! and `batchgate` / `mock-vllm` started as separate processes that are killed when their
//! [`Proc`] guard is dropped (an error or Ctrl-C leaves nothing behind).

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// How long a started binary may take to print `listening on`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A `cargo` command run from the workspace root, without the variables
/// `cargo run` set for xtask itself. Build scripts track some of them
/// (ring's reruns when `CARGO_MANIFEST_DIR` or `CARGO_PKG_NAME` changes),
/// so a nested build that inherited them would rebuild ring and everything
/// above it, and the next plain `cargo` run would rebuild it all back: every
/// `cargo xtask quickstart` recompiled the TLS stack and the gateway twice.
pub fn cargo() -> Command {
    let program = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root());
    without_cargo_run_env(&mut cmd);
    cmd
}

/// Removes from `cmd`'s environment what `cargo run` set for xtask, for
/// commands that run cargo themselves (see [`cargo`]).
pub fn without_cargo_run_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if is_set_by_cargo_run(&name) {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd
}

/// Whether `cargo run` sets `name` for the program it runs (see [`cargo`]).
fn is_set_by_cargo_run(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || name.starts_with("CARGO_BIN_")
        || [
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
        ]
        .contains(&name)
}

/// Builds `batchgate` and `mock-vllm` in release mode; returns the directory
/// holding both binaries.
pub fn build_release() -> Result<PathBuf> {
    let ok = cargo()
        .args(["build", "--release", "-p", "batchgate"])
        .args(["-p", "batchgate-mock-vllm"])
        .status()
        .context("run cargo build")?
        .success();
    if !ok {
        bail!("release build failed");
    }
    Ok(target_dir(&workspace_root()).join("release"))
}

/// Where cargo puts what it builds: `CARGO_TARGET_DIR` when set.
pub fn target_dir(root: &std::path::Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// A child process, killed (SIGKILL) and reaped when dropped unless it has
/// already been waited for.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    name: String,
    reaped: bool,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proc {
    /// Starts `cmd` with stdout piped (stderr is the caller's choice) and
    /// waits until it prints a line containing `listening on`; returns the
    /// guard and the last word of that line (the URL). Stdout is drained in
    /// the background afterwards so the child never blocks on a full pipe.
    pub fn start(cmd: &mut Command, name: &str) -> Result<(Proc, String)> {
        let child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {name}"))?;
        let mut proc = Proc {
            child,
            name: name.to_string(),
            reaped: false,
        };
        let stdout = proc
            .child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout from {name}"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line);
                    }
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => {
                let url = line.rsplit(' ').next().unwrap_or_default().to_string();
                Ok((proc, url))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = proc.wait().map(describe).unwrap_or_default();
                bail!("{name} exited before listening ({status}; is its port taken?)")
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("{name} did not print `listening on` within {START_TIMEOUT:?}")
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended (reaping it).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        let status = self.child.try_wait()?;
        self.reaped |= status.is_some();
        Ok(status)
    }

    /// Waits for the process to end.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        let status = self.child.wait()?;
        self.reaped = true;
        Ok(status)
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        self.child.kill()?;
        self.wait()
    }

    /// SIGTERM, then wait up to `patience` for a graceful exit. Returns the
    /// status and whether it had to be SIGKILLed after all.
    pub async fn terminate(&mut self, patience: Duration) -> Result<(ExitStatus, bool)> {
        if let Some(status) = self.try_wait()? {
            return Ok((status, false));
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .with_context(|| format!("send SIGTERM to {}", self.name))?;
        if !sent.success() {
            bail!("kill -TERM {} failed: {sent}", self.pid());
        }
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                return Ok((status, false));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok((self.kill9()?, true))
    }
}

/// `0`, `2`, `SIGKILL`, …: an exit status as the table prints it.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(9)) => "SIGKILL".into(),
        (None, Some(15)) => "SIGTERM".into(),
        (None, Some(sig)) => format!("signal {sig}"),
        (None, None) => "?".into(),
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; a process that binds it
/// later keeps it across its own restarts).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Whether `tool --version` runs.
pub fn has(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
