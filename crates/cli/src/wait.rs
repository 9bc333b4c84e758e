//! Following a batch to its terminal status, with Ctrl-C handling: the first
//! Ctrl-C asks `Cancel batch <id>? [y/N]` (or cancels without asking when
//! stdin is not a terminal) and keeps waiting for the batch to end; a second
//! one after the cancel stops waiting at once.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::Client;
use crate::error::{CliError, Result};
use crate::progress::Progress;
use crate::upstream::Upstream;

/// How long polls may keep failing transiently (a gateway restart, a proxy
/// hiccup) before waiting gives up with the error.
const OUTAGE_LIMIT: Duration = Duration::from_secs(60);

/// Statuses a batch never leaves.
pub const TERMINAL: [&str; 4] = ["completed", "failed", "expired", "cancelled"];

/// Whether `batch` has ended.
pub fn is_terminal(batch: &Value) -> bool {
    batch["status"]
        .as_str()
        .is_some_and(|s| TERMINAL.contains(&s))
}

/// How waiting ended.
#[derive(Debug)]
pub enum Outcome {
    /// The batch reached a terminal status; its last poll.
    Ended(Value),
    /// The user interrupted again after cancelling (or during the prompt).
    Interrupted,
}

/// SIGINT / Ctrl-C as a stream: signals that arrive while nobody is waiting
/// for one are kept, not lost, and no longer kill the process.
#[derive(Debug)]
pub struct Interrupts {
    #[cfg(unix)]
    inner: tokio::signal::unix::Signal,
    #[cfg(windows)]
    inner: tokio::signal::windows::CtrlC,
}

impl Interrupts {
    /// Starts catching Ctrl-C.
    pub fn catch() -> Result<Interrupts> {
        #[cfg(unix)]
        let inner = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        #[cfg(windows)]
        let inner = tokio::signal::windows::ctrl_c();
        let inner = inner.map_err(|e| CliError::io("cannot catch Ctrl-C", e))?;
        Ok(Interrupts { inner })
    }

    /// The next Ctrl-C.
    pub async fn recv(&mut self) {
        if self.inner.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

enum Event {
    Polled(Result<Value>),
    Tick,
    Interrupt,
}

enum Answer {
    Yes,
    No,
    Abort,
}

/// Polls `GET /v1/batches/{id}` every `interval`, showing progress, until
/// the batch ends or the user gives up.
pub async fn wait(
    client: &Client,
    id: &str,
    interval: Duration,
    progress: &mut Progress,
    interrupts: &mut Interrupts,
) -> Result<Outcome> {
    let path = format!("/v1/batches/{id}");
    let mut cancel_sent = false;
    let mut poll_now = true;
    let mut failing_since: Option<Instant> = None;
    loop {
        let event = if poll_now {
            tokio::select! {
                r = client.get_json(&path, &[]) => Event::Polled(r),
                () = interrupts.recv() => Event::Interrupt,
            }
        } else {
            tokio::select! {
                () = tokio::time::sleep(interval) => Event::Tick,
                () = interrupts.recv() => Event::Interrupt,
            }
        };
        match event {
            Event::Polled(Err(e))
                if transient(&e) && failing_since.is_none_or(|t| t.elapsed() < OUTAGE_LIMIT) =>
            {
                if failing_since.is_none() {
                    progress.note(&format!("poll failed ({e}); retrying"));
                    failing_since = Some(Instant::now());
                }
                poll_now = false;
            }
            Event::Polled(batch) => {
                let batch = batch?;
                if failing_since.take().is_some() {
                    progress.note("the gateway answers again");
                }
                if is_terminal(&batch) {
                    progress.finish(&batch);
                    return Ok(Outcome::Ended(batch));
                }
                progress.set_upstream(upstream_of(client, &batch).await);
                progress.update(&batch);
                poll_now = false;
            }
            Event::Tick => poll_now = true,
            Event::Interrupt if cancel_sent => {
                progress.pause();
                eprintln!("stopped waiting; batch {id} is still cancelling on the gateway");
                return Ok(Outcome::Interrupted);
            }
            Event::Interrupt => match confirm(id, progress, interrupts).await {
                Answer::Abort => {
                    eprintln!("stopped waiting; batch {id} keeps running");
                    return Ok(Outcome::Interrupted);
                }
                Answer::No => progress.note("not cancelled; still waiting"),
                Answer::Yes => {
                    cancel_sent = true;
                    cancel(client, id, progress).await;
                    poll_now = true;
                }
            },
        }
    }
}

/// The gateway's concurrency gauges for the batch's model; `None` when it
/// cannot say (no model, no such gauges, `/metrics` not answering).
async fn upstream_of(client: &Client, batch: &Value) -> Option<Upstream> {
    let model = batch["model"].as_str()?;
    let text = client.get_text("/metrics").await.ok()?;
    Upstream::of_model(&text, model)
}

/// Whether a failed poll may succeed if simply repeated.
fn transient(e: &CliError) -> bool {
    match e {
        CliError::Transport { .. } => true,
        CliError::Http { status, .. } => matches!(status, 502..=504),
        _ => false,
    }
}

/// Asks whether to cancel on a terminal stdin; says yes without asking
/// otherwise. A Ctrl-C during the question aborts.
async fn confirm(id: &str, progress: &mut Progress, interrupts: &mut Interrupts) -> Answer {
    if !std::io::stdin().is_terminal() {
        return Answer::Yes;
    }
    progress.pause();
    eprint!("Cancel batch {id}? [y/N] ");
    let _ = std::io::stderr().flush();
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    let answer = tokio::select! {
        line = read => match line {
            Ok(Ok(l)) if matches!(l.trim().to_ascii_lowercase().as_str(), "y" | "yes") => Answer::Yes,
            _ => Answer::No,
        },
        () = interrupts.recv() => {
            eprintln!();
            Answer::Abort
        }
    };
    progress.resume();
    answer
}

/// `POST /v1/batches/{id}/cancel`; failures are reported, not fatal (the
/// batch may just have ended, which the next poll shows).
async fn cancel(client: &Client, id: &str, progress: &Progress) {
    match client.post_empty(&format!("/v1/batches/{id}/cancel")).await {
        Ok(_) => progress.note(&format!(
            "cancelling batch {id}; waiting for it to end (Ctrl-C again to stop waiting)"
        )),
        Err(e) => progress.note(&format!("cancel of {id} failed: {e}")),
    }
}
