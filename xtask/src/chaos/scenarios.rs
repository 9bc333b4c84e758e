//! The fault scenarios. Each starts its own mock and gateway, runs one batch
//! through its fault and returns its table row.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::disk::{self, Tmpfs};
use super::fleet::{config_yaml, write_input, Gateway, GatewayConfig, Input, Mock, MODEL};
use super::report::{tally, Row, Tally, Verdict};
use super::Ctx;

/// How long a gateway may take to stop after SIGTERM before it is killed.
const TERM_PATIENCE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);

/// One scenario's processes and batch.
struct Run {
    mock: Mock,
    gw: Gateway,
    input: Input,
    batch: String,
    notes: Vec<String>,
    /// When the fault was lifted, and how to say so: the row then tells how
    /// long the batch took to end after it.
    lifted: Option<(Instant, &'static str)>,
}

/// Starts the mock (with `mock_args`) and the gateway (data in `data`),
/// uploads the input and creates the batch, then waits until it has left
/// `validating`.
async fn begin(
    ctx: &Ctx,
    dir: &Path,
    data: &Path,
    mock_args: &[String],
    cfg: &GatewayConfig,
) -> Result<Run> {
    let mock = Mock::start(&ctx.bin, dir, ctx.latency, mock_args)?;
    let mut gw = Gateway::start(&ctx.bin, dir, data, &config_yaml(&mock.url, cfg))?;
    let input = write_input(&dir.join("input.jsonl"), ctx.lines)?;
    let file = gw.api.upload(&input.path, MODEL).await?;
    let batch = gw.api.create(&file).await?;
    let started = wait_until(&mut gw, &batch, Duration::from_secs(60), |b| {
        b["status"] != "validating"
    })
    .await?;
    if started.is_none() {
        anyhow::bail!("the batch did not leave `validating` within 60 s");
    }
    Ok(Run {
        mock,
        gw,
        input,
        batch,
        notes: Vec::new(),
        lifted: None,
    })
}

/// Polls the batch every 200 ms until `done(batch)`; `None` if `patience`
/// runs out or the gateway process ends on its own first.
async fn wait_until(
    gw: &mut Gateway,
    id: &str,
    patience: Duration,
    done: impl Fn(&Value) -> bool,
) -> Result<Option<Value>> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if !gw.alive()? {
            return Ok(None);
        }
        if let Some(b) = gw.batch(id).await {
            if done(&b) {
                return Ok(Some(b));
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(None)
}

fn ended(b: &Value) -> bool {
    matches!(
        b["status"].as_str(),
        Some("completed" | "failed" | "expired" | "cancelled")
    )
}

/// Lines with a result so far.
fn finished(b: &Value) -> u64 {
    b["request_counts"]["completed"].as_u64().unwrap_or(0)
        + b["request_counts"]["failed"].as_u64().unwrap_or(0)
}

/// Waits until `share` of the lines have a result (or the batch ended);
/// returns how many have.
async fn wait_progress(run: &mut Run, share: f64, patience: Duration) -> Result<u64> {
    let want = (run.input.custom_ids.len() as f64 * share) as u64;
    let b = wait_until(&mut run.gw, &run.batch, patience, |b| {
        ended(b) || finished(b) >= want
    })
    .await?;
    Ok(b.as_ref().map(finished).unwrap_or(0))
}

/// Waits for the batch to end (restarting the gateway once if `rescue` and
/// it did not end by itself), counts, and stops the gateway gracefully.
async fn finish(mut run: Run, patience: Duration, rescue: bool) -> Result<Row> {
    let mut end = wait_until(&mut run.gw, &run.batch, patience, ended).await?;
    if end.is_none() && rescue {
        let last = run.gw.batch(&run.batch).await;
        run.notes.push(format!(
            "did not end by itself within {} s ({}); restarted the gateway",
            patience.as_secs(),
            describe_batch(last.as_ref()),
        ));
        run.gw.terminate(Duration::from_secs(30)).await?;
        run.gw.restart()?;
        end = wait_until(&mut run.gw, &run.batch, patience, ended).await?;
    }
    let (status, tally, verdict) = match end {
        Some(b) => {
            if let Some((at, what)) = run.lifted {
                let secs = at.elapsed().as_secs_f64();
                run.notes.push(format!("ended {secs:.1} s after {what}"));
            }
            let stats = run.mock.stats().await?;
            let t = tally(&mut run.gw, &b, &run.input, &stats).await?;
            if t.unmatched > 0 {
                run.notes.push(format!(
                    "{} upstream requests matched no input line",
                    t.unmatched
                ));
            }
            if let Some((code, n)) = &t.top_error {
                run.notes.push(format!("error file: {n}× {code}"));
            }
            let ok = t.lost == 0 && t.duplicated == 0;
            let verdict = if ok { Verdict::Ok } else { Verdict::Fail };
            (
                b["status"].as_str().unwrap_or("?").to_string(),
                Some(t),
                verdict,
            )
        }
        None => {
            let last = run.gw.batch(&run.batch).await;
            let status = format!("did not end: {}", describe_batch(last.as_ref()));
            (status, None, Verdict::Fail)
        }
    };
    run.gw.terminate(TERM_PATIENCE).await?;
    Ok(Row {
        name: "",
        status,
        tally,
        five_xx: std::mem::take(&mut run.gw.five_xx),
        exits: std::mem::take(&mut run.gw.exits),
        wall: Duration::ZERO,
        notes: run.notes,
        verdict,
    })
}

/// `in_progress 812/2000`, or `no answer`.
fn describe_batch(b: Option<&Value>) -> String {
    match b {
        Some(b) => format!(
            "{} {}/{}",
            b["status"].as_str().unwrap_or("?"),
            finished(b),
            b["request_counts"]["total"].as_u64().unwrap_or(0)
        ),
        None => "no answer".into(),
    }
}

/// How the gateway is stopped in the stop-and-restart scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Kill,
    Term,
}

/// `kill9-loop` and `sigterm`: stop the gateway `ctx.kills` times at random
/// moments while the batch is `in_progress`, restarting it on the same data
/// directory each time, then let the batch end.
pub async fn stop_loop(ctx: &Ctx, dir: &Path, how: Stop) -> Result<Row> {
    let cfg = ctx.gateway_config(None);
    let mut run = begin(ctx, dir, &dir.join("data"), &[], &cfg).await?;
    let mut rng = StdRng::seed_from_u64(ctx.seed);
    let mut stops = 0;
    let mut took = Vec::new();
    while stops < ctx.kills {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1500))).await;
        match run.gw.batch(&run.batch).await {
            Some(b) if b["status"] == "in_progress" => {}
            _ => break,
        }
        match how {
            Stop::Kill => run.gw.kill9()?,
            Stop::Term => took.push(run.gw.terminate(TERM_PATIENCE).await?),
        }
        stops += 1;
        run.gw.restart()?;
    }
    let bound = stops * ctx.parallel;
    run.notes.push(match how {
        Stop::Kill => format!("{stops} SIGKILLs; bound {stops}×{} = {bound}", ctx.parallel),
        Stop::Term => format!("{stops} SIGTERMs; stops took {}", seconds(&took)),
    });
    let mut row = finish(run, ctx.patience(), false).await?;
    if let (Stop::Kill, Some(t)) = (how, &row.tally) {
        row.notes.push(bound_note(t, bound as u64));
    }
    Ok(row)
}

/// Splits kill9-loop's re-sent lines into attempts cut off in flight (no
/// faults are injected, so every non-200 attempt of a repeated line is one)
/// and lines answered but not yet journaled, and checks the excess 200s
/// against the in-flight bound.
fn bound_note(t: &Tally, bound: u64) -> String {
    let cut_off = t.resent.saturating_sub(t.excess_200);
    let within = if t.excess_200 <= bound {
        "within"
    } else {
        "OVER"
    };
    format!(
        "excess 200s {} {within} bound; re-sent = {cut_off} cut off in flight + {} answered but not yet journaled",
        t.excess_200, t.excess_200
    )
}

/// `0.1/0.1/2.3 s`.
fn seconds(ds: &[Duration]) -> String {
    let parts: Vec<String> = ds
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64()))
        .collect();
    format!("{} s", parts.join("/"))
}

/// `fault-mix`: 500s, dropped connections, 429s with Retry-After and a few
/// hangs (cut by a 2 s deployment timeout).
pub async fn fault_mix(ctx: &Ctx, dir: &Path) -> Result<Row> {
    let mock_args: Vec<String> = [
        "--fail-rate",
        "0.10",
        "--drop-rate",
        "0.05",
        "--rate-limit-rate",
        "0.05",
        "--retry-after-secs",
        "1",
        "--hang-rate",
        "0.01",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--seed".to_string(), ctx.seed.to_string()])
    .collect();
    let cfg = ctx.gateway_config(Some(2));
    let mut run = begin(ctx, dir, &dir.join("data"), &mock_args, &cfg).await?;
    run.notes
        .push("10% 500, 5% drop, 5% 429 (Retry-After 1 s), 1% hang; timeout 2 s".into());
    finish(run, ctx.patience(), false).await
}

/// `outage`: the mock crashes a quarter of the way in and comes back on the
/// same port `ctx.outage` later.
pub async fn outage(ctx: &Ctx, dir: &Path) -> Result<Row> {
    let cfg = ctx.gateway_config(None);
    let mut run = begin(ctx, dir, &dir.join("data"), &[], &cfg).await?;
    let done = wait_progress(&mut run, 0.25, ctx.patience()).await?;
    run.mock.crash().await?;
    let down = Instant::now();
    while down.elapsed() < ctx.outage {
        // Keep polling: records 5xx answers and a gateway that dies.
        run.gw.alive()?;
        run.gw.batch(&run.batch).await;
        tokio::time::sleep(POLL).await;
    }
    run.mock.restart()?;
    run.lifted = Some((Instant::now(), "the upstream came back"));
    let during = run.gw.batch(&run.batch).await;
    run.notes.push(format!(
        "upstream down {} s from {done} lines done ({} when it came back)",
        ctx.outage.as_secs(),
        describe_batch(during.as_ref())
    ));
    finish(run, ctx.patience(), false).await
}

/// `full-disk`: the data directory on a 64 MiB tmpfs that is filled while
/// the batch runs and freed `ctx.full` later.
pub async fn full_disk(ctx: &Ctx, dir: &Path) -> Result<Row> {
    let mnt = dir.join("mnt");
    // Declared before the run, so dropped after it: the gateway is gone
    // before the unmount, even on error.
    let _fs = match Tmpfs::mount(&mnt, 64) {
        Ok(fs) => fs,
        Err(e) => {
            let why = format!("skipped: cannot mount a small filesystem here ({e:#})");
            return Ok(Row::skipped("full-disk", why));
        }
    };
    let cfg = ctx.gateway_config(None);
    let mut run = begin(ctx, dir, &mnt.join("data"), &[], &cfg).await?;
    let spare = run.gw.api.upload(&run.input.path, MODEL).await?;
    let done = wait_progress(&mut run, 0.2, ctx.patience()).await?;
    let filler = mnt.join("filler");
    let bytes = disk::fill(&filler)?;
    let full = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, body) = run.gw.api.delete_file(&spare).await?;
    run.gw.note_status(status);
    while full.elapsed() < ctx.full {
        run.gw.alive()?;
        run.gw.batch(&run.batch).await;
        tokio::time::sleep(POLL).await;
    }
    std::fs::remove_file(&filler)?;
    run.lifted = Some((Instant::now(), "space was freed"));
    let after = run.gw.batch(&run.batch).await;
    run.notes.push(format!(
        "disk filled ({} MiB) at {done} lines done, freed {} s later at {}; DELETE file while full: {status}{}",
        bytes >> 20,
        ctx.full.as_secs(),
        describe_batch(after.as_ref()),
        if status == 200 { String::new() } else { format!(" {body}") },
    ));
    finish(run, ctx.patience(), true).await
}
