// Why lines failed: the error file read in the browser (streamed, up to a
// cap), grouped by code, with examples and the input line numbers (found by
// streaming the input file for the failed custom_ids).

import { eachLine } from './api.js';

/** Error lines read at most; enough to see every kind of failure. */
const MAX_ERROR_LINES = 5000;
/** Bytes of the error file and of the input file read at most. */
const MAX_BYTES = 16 * 1024 * 1024;
const EXAMPLES = 3;

// The gateway's rule for what a retry sends again by default (see
// docs/batches.md): an upstream status it retries, or no answer for one of
// these reasons. Kept in step with crates/engine/src/batch/retry.rs.
const RETRIED_STATUSES = (s) => s === 408 || s === 409 || s === 429 || s >= 500;
const RETRIED_CODES = new Set(['upstream_error', 'upstream_unreachable', 'batch_expired', 'budget_exceeded', 'request_not_executed']);

/** The group a result line belongs to: {key, label, message, retried}. */
export function classify(line) {
  const r = line.response;
  if (r && typeof r === 'object') {
    const e = r.body && r.body.error;
    const msg = (e && (e.message || e.type)) || JSON.stringify(r.body).slice(0, 300);
    return { key: `http_${r.status_code}`, label: `HTTP ${r.status_code}`, message: msg, retried: RETRIED_STATUSES(r.status_code) };
  }
  const e = line.error || {};
  const code = e.code || 'unknown';
  return { key: code, label: code, message: e.message || '', retried: RETRIED_CODES.has(code) };
}

/** `"custom_id": "…"` of a JSONL line, without parsing the whole body. */
function customIdOf(text) {
  const m = /"custom_id"\s*:\s*("(?:[^"\\]|\\.)*")/.exec(text);
  if (!m) return null;
  try {
    return JSON.parse(m[1]);
  } catch {
    return null;
  }
}

/**
 * Groups of failed lines: [{key, label, retried, count, examples:[{custom_id,
 * message, line}], lines:[…]}], plus how much was read.
 */
export async function analyze(batch) {
  const groups = new Map();
  const byId = new Map();
  let read = 0;
  const errors = await eachLine(
    batch.error_file_id,
    (text) => {
      if (!text.trim()) return true;
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        return true;
      }
      const c = classify(line);
      let g = groups.get(c.key);
      if (!g) {
        g = { key: c.key, label: c.label, retried: c.retried, count: 0, examples: [], lines: [] };
        groups.set(c.key, g);
      }
      g.count += 1;
      const entry = { custom_id: line.custom_id, message: c.message, line: null, group: g };
      if (g.examples.length < EXAMPLES) g.examples.push(entry);
      if (line.custom_id != null) byId.set(line.custom_id, entry);
      read += 1;
      return read < MAX_ERROR_LINES;
    },
    MAX_BYTES,
  );
  const input = await numberLines(batch.input_file_id, byId);
  for (const g of groups.values()) g.lines.sort((a, b) => a - b);
  return {
    groups: [...groups.values()].sort((a, b) => b.count - a.count),
    read,
    errorsComplete: errors.complete,
    inputComplete: input.complete,
    inputGone: input.gone,
  };
}

/** Gives each failed entry its input line number; stops once all are found. */
async function numberLines(inputFileId, byId) {
  let left = byId.size;
  if (!left) return { complete: true };
  try {
    const r = await eachLine(
      inputFileId,
      (text, number) => {
        const id = customIdOf(text);
        const entry = id != null && byId.get(id);
        if (entry && entry.line == null) {
          entry.line = number;
          entry.group.lines.push(number);
          left -= 1;
        }
        return left > 0;
      },
      MAX_BYTES,
    );
    return { complete: r.complete || left === 0 };
  } catch (e) {
    // The input may have been deleted or expired since: show the errors
    // without line numbers.
    return { complete: false, gone: e.status === 404 };
  }
}

/** "3, 7, 9–12, …" for sorted line numbers, at most `max` shown. */
export function ranges(lines, max = 40) {
  const out = [];
  let i = 0;
  while (i < lines.length && out.length < max) {
    let j = i;
    while (j + 1 < lines.length && lines[j + 1] === lines[j] + 1) j += 1;
    out.push(j > i ? `${lines[i]}–${lines[j]}` : `${lines[i]}`);
    i = j + 1;
  }
  if (i < lines.length) out.push('…');
  return out.join(', ');
}
