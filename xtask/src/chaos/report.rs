//! What a scenario measured, and the table.
//!
//! Per line (custom_id) of the input:
//! - **lost**: in neither the output nor the error file;
//! - **dup**: custom_ids that appear more than once across both files;
//! - **errors**: lines in the error file.
//!
//! Per line, from the mock's counters keyed by body digest (every line's
//! body is unique, so a digest is a line):
//! - **excess 200s**: Σ max(0, 200 answers − 1) — work the upstream did
//!   twice for one line, whether or not the gateway saw both answers. This
//!   is the "excess upstream calls" figure.
//! - **re-sent**: Σ max(0, requests − 1) — every repeat, including retries
//!   after a 5xx/429/drop/timeout and attempts cut off by a kill or outage
//!   before the upstream answered (those cost no answer, but were sent).
//! - **upstream reqs**: every inference request the mock received.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use batchgate_mock_vllm::MockStats;
use serde_json::Value;

use super::fleet::{Gateway, Input};

/// The counts of one finished (or given-up) batch.
#[derive(Debug, Default)]
pub struct Tally {
    pub submitted: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub error_lines: usize,
    pub excess_200: u64,
    pub resent: u64,
    pub upstream_requests: u64,
    /// Requests whose body digest matches no input line.
    pub unmatched: u64,
    /// The most frequent error code in the error file, with its count.
    pub top_error: Option<(String, usize)>,
}

/// Downloads the batch's output and error files and counts, against
/// `input` and the mock's `stats`.
pub async fn tally(
    gw: &mut Gateway,
    batch: &Value,
    input: &Input,
    stats: &MockStats,
) -> Result<Tally> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut codes: HashMap<String, usize> = HashMap::new();
    let mut t = Tally {
        submitted: input.custom_ids.len(),
        ..Tally::default()
    };
    for (field, is_error) in [("output_file_id", false), ("error_file_id", true)] {
        let Some(id) = batch[field].as_str() else {
            continue;
        };
        let (status, text) = gw.api.content(id).await?;
        gw.note_status(status);
        if status != 200 {
            anyhow::bail!("{field} {id}: content answered {status}");
        }
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)?;
            let cid = v["custom_id"].as_str().unwrap_or_default().to_string();
            *seen.entry(cid).or_insert(0) += 1;
            if is_error {
                t.error_lines += 1;
                *codes.entry(error_code(&v)).or_insert(0) += 1;
            }
        }
    }
    t.lost = input
        .custom_ids
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .count();
    t.duplicated = seen.values().filter(|&&n| n > 1).count();
    t.top_error = codes.into_iter().max_by_key(|(_, n)| *n);
    t.upstream_requests = stats.requests;
    for (digest, &n) in &stats.by_body {
        if input.digests.contains_key(digest) {
            t.resent += n.saturating_sub(1);
        } else {
            t.unmatched += n;
        }
    }
    t.excess_200 = stats
        .succeeded_by_body
        .iter()
        .filter(|(d, _)| input.digests.contains_key(*d))
        .map(|(_, &n)| n.saturating_sub(1))
        .sum();
    Ok(t)
}

/// `error.code`, else the upstream's status code, else `?`.
fn error_code(line: &Value) -> String {
    if let Some(code) = line["error"]["code"].as_str() {
        return code.to_string();
    }
    match line["response"]["status_code"].as_u64() {
        Some(s) => format!("HTTP {s}"),
        None => "?".into(),
    }
}

/// How a scenario ended, for the verdict and the exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The batch ended; nothing lost or duplicated.
    Ok,
    /// Lines lost or duplicated, the batch never ended, or the run broke.
    Fail,
    /// The scenario could not run here (not a pass).
    Skipped,
}

/// One table row.
#[derive(Debug)]
pub struct Row {
    pub name: &'static str,
    pub status: String,
    pub tally: Option<Tally>,
    pub five_xx: Vec<u16>,
    pub exits: Vec<String>,
    pub wall: Duration,
    pub notes: Vec<String>,
    pub verdict: Verdict,
}

impl Row {
    pub fn skipped(name: &'static str, why: String) -> Row {
        Row {
            name,
            status: "skipped".into(),
            tally: None,
            five_xx: Vec::new(),
            exits: Vec::new(),
            wall: Duration::ZERO,
            notes: vec![why],
            verdict: Verdict::Skipped,
        }
    }

    pub fn broken(name: &'static str, error: &anyhow::Error) -> Row {
        Row {
            name,
            status: "error".into(),
            tally: None,
            five_xx: Vec::new(),
            exits: Vec::new(),
            wall: Duration::ZERO,
            notes: vec![format!("run failed: {error:#}")],
            verdict: Verdict::Fail,
        }
    }
}

/// Prints the rows as one Markdown table, then a legend.
pub fn print_table(rows: &[Row]) {
    println!("\n| scenario | verdict | batch | lines | lost | dup | error file | excess 200s | re-sent | upstream reqs | gateway 5xx | gateway exits | wall | notes |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let counts = match &r.tally {
            Some(t) => [
                t.submitted.to_string(),
                t.lost.to_string(),
                t.duplicated.to_string(),
                t.error_lines.to_string(),
                t.excess_200.to_string(),
                t.resent.to_string(),
                t.upstream_requests.to_string(),
            ],
            None => std::array::from_fn(|_| "–".to_string()),
        };
        let exits = if r.exits.is_empty() {
            "–".to_string()
        } else {
            r.exits.join(", ")
        };
        let verdict = match r.verdict {
            Verdict::Ok => "ok",
            Verdict::Fail => "FAIL",
            Verdict::Skipped => "skipped",
        };
        println!(
            "| {} | {verdict} | {} | {} | {} | {exits} | {:.1} s | {} |",
            r.name,
            r.status,
            counts.join(" | "),
            five_xx(&r.five_xx),
            r.wall.as_secs_f64(),
            r.notes.join("; "),
        );
    }
    println!(
        "\nlost/dup: by custom_id across the output and error files. excess 200s: Σ per line \
         max(0, upstream 200 answers − 1). re-sent: Σ per line max(0, upstream requests − 1), \
         retries and attempts cut off before an answer included. FAIL: lines lost or \
         duplicated, the batch did not end, or the run itself broke."
    );
}

/// `0`, or `3 (500×2, 503)`.
fn five_xx(codes: &[u16]) -> String {
    if codes.is_empty() {
        return "0".into();
    }
    let mut by: std::collections::BTreeMap<u16, usize> = Default::default();
    for c in codes {
        *by.entry(*c).or_insert(0) += 1;
    }
    let parts: Vec<String> = by
        .iter()
        .map(|(c, n)| {
            if *n == 1 {
                c.to_string()
            } else {
                format!("{c}×{n}")
            }
        })
        .collect();
    format!("{} ({})", codes.len(), parts.join(", "))
}
