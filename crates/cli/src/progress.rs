//! Progress of a batch being waited for: a live indicatif bar on a terminal,
//! or one plain line per change otherwise (`--progress plain`, or stderr not
//! a terminal), e.g.
//! `batch_…: in_progress 120/1000 done, 3 failed, 85.2 lines/s, ETA 10s,
//! upstream limit 64, queue 0` (the last part from the gateway's adaptive
//! concurrency gauges, when it exports them).

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::output::{count, short_duration};
use crate::upstream::Upstream;

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A live bar when stderr is a terminal, plain lines otherwise.
    Auto,
    /// A live bar (drawn only if stderr is a terminal).
    Bar,
    /// One plain line on stderr per change of status or counts.
    Plain,
}

/// The rate is measured over this much recent time.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// What one poll of a batch showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The batch status, e.g. `in_progress`.
    pub status: String,
    /// Lines that succeeded.
    pub completed: u64,
    /// Lines that failed.
    pub failed: u64,
    /// Lines in the batch (0 until validated).
    pub total: u64,
}

impl Snapshot {
    /// The snapshot of a batch object.
    pub fn of(batch: &Value) -> Snapshot {
        Snapshot {
            status: batch["status"].as_str().unwrap_or("unknown").to_string(),
            completed: count(batch, "request_counts", "completed"),
            failed: count(batch, "request_counts", "failed"),
            total: count(batch, "request_counts", "total"),
        }
    }

    /// Finished lines, successful or not.
    pub fn done(&self) -> u64 {
        self.completed + self.failed
    }
}

/// Shows a batch's progress on stderr.
#[derive(Debug)]
pub struct Progress {
    id: String,
    live: bool,
    bar: Option<ProgressBar>,
    last: Option<Snapshot>,
    samples: VecDeque<(Instant, u64)>,
    started: Instant,
    upstream: Option<Upstream>,
}

impl Progress {
    /// Progress of batch `id`, shown as `mode` asks.
    pub fn new(id: &str, mode: ProgressMode) -> Progress {
        let live = match mode {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Bar => true,
            ProgressMode::Plain => false,
        };
        let mut progress = Progress {
            id: id.to_string(),
            live,
            bar: None,
            last: None,
            samples: VecDeque::new(),
            started: Instant::now(),
            upstream: None,
        };
        progress.resume();
        progress
    }

    /// Records a poll of the batch and shows it if anything changed.
    pub fn update(&mut self, batch: &Value) {
        let snap = Snapshot::of(batch);
        let now = Instant::now();
        self.samples.push_back((now, snap.done()));
        while self.samples.len() > 2 && now - self.samples[1].0 > RATE_WINDOW {
            self.samples.pop_front();
        }
        if let Some(bar) = &self.bar {
            bar.set_length(snap.total.max(1));
            bar.set_position(snap.done());
            bar.set_message(self.detail(&snap));
        }
        if self.last.as_ref() != Some(&snap) {
            if self.bar.is_none() {
                eprintln!("{}", self.line(&snap));
            }
            self.last = Some(snap);
        }
    }

    /// How the gateway drives the batch's servers now (shown from the next
    /// update on, while the batch runs).
    pub fn set_upstream(&mut self, upstream: Option<Upstream>) {
        self.upstream = upstream;
    }

    /// Ends the display; prints the final line (also under a live bar).
    pub fn finish(&mut self, batch: &Value) {
        self.update(batch);
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            eprintln!("{}", self.line(&Snapshot::of(batch)));
        }
    }

    /// Prints a message line without garbling the bar.
    pub fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    /// Removes the bar (e.g. for a prompt); [`Progress::resume`] brings it back.
    pub fn pause(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Shows the live bar again (no-op in plain mode).
    pub fn resume(&mut self) {
        if !self.live || self.bar.is_some() {
            return;
        }
        // The batch ID is on stdout already; the line keeps to 80 columns.
        let style =
            ProgressStyle::with_template("{spinner} [{bar:20}] {pos}/{len} {msg} ({elapsed})")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::hidden())
            .with_style(style)
            .with_elapsed(self.started.elapsed());
        if let Some(snap) = &self.last {
            bar.set_length(snap.total.max(1));
            bar.set_position(snap.done());
            bar.set_message(self.detail(snap));
        }
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bar = Some(bar);
    }

    /// Lines per second over the recent window, once measurable.
    fn rate(&self) -> Option<f64> {
        let (t0, d0) = self.samples.front()?;
        let (t1, d1) = self.samples.back()?;
        let secs = (*t1 - *t0).as_secs_f64();
        (secs >= 0.2).then(|| d1.saturating_sub(*d0) as f64 / secs)
    }

    /// `in_progress, 3 failed, 85.2 lines/s, ETA 10s` (the bar's message).
    fn detail(&self, snap: &Snapshot) -> String {
        format!(
            "{}, {} failed{}{}",
            snap.status,
            snap.failed,
            self.speed(snap),
            self.upstream(snap, true)
        )
    }

    /// The plain line for `snap`.
    fn line(&self, snap: &Snapshot) -> String {
        format!(
            "{}: {} {}/{} done, {} failed{}{}",
            self.id,
            snap.status,
            snap.done(),
            snap.total,
            snap.failed,
            self.speed(snap),
            self.upstream(snap, false)
        )
    }

    /// `, 85.2 lines/s, ETA 10s` while running; the rate alone at the end.
    fn speed(&self, snap: &Snapshot) -> String {
        let Some(rate) = self.rate() else {
            return String::new();
        };
        let mut out = format!(", {rate:.1} lines/s");
        if snap.status == "in_progress" && snap.total > 0 {
            let left = snap.total.saturating_sub(snap.done());
            if rate > 0.0 {
                out.push_str(&format!(
                    ", ETA {}",
                    short_duration((left as f64 / rate).ceil() as u64)
                ));
            } else {
                out.push_str(", ETA ?");
            }
        }
        out
    }

    /// What the gateway's gauges say while the batch runs: all of it on a
    /// plain line, the limit alone in the bar's narrower message.
    fn upstream(&self, snap: &Snapshot, short: bool) -> String {
        match &self.upstream {
            Some(u) if snap.status == "in_progress" && short => format!(", limit {:.0}", u.limit),
            Some(u) if snap.status == "in_progress" => u.suffix(),
            _ => String::new(),
        }
    }
}

impl Drop for Progress {
    /// Clears a live bar, so that a following error message starts on a
    /// clean line.
    fn drop(&mut self) {
        self.pause();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_gauges_show_while_the_batch_runs() {
        let mut p = Progress::new("batch_x", ProgressMode::Plain);
        let snap = |status: &str| Snapshot {
            status: status.into(),
            completed: 3,
            failed: 0,
            total: 10,
        };
        p.set_upstream(Some(Upstream {
            limit: 48.0,
            queue: 1.0,
            per_second: 20.0,
        }));
        let running = p.line(&snap("in_progress"));
        assert!(
            running.ends_with(", upstream limit 48, queue 1"),
            "{running}"
        );
        assert!(p.detail(&snap("in_progress")).ends_with(", limit 48"));
        assert!(!p.line(&snap("finalizing")).contains("limit"));
        p.set_upstream(None);
        assert!(!p.line(&snap("in_progress")).contains("limit"));
    }
}
