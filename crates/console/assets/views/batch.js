// One batch: its states over time, live counts, rate and ETA, tokens and
// cost, metadata, its files, why lines failed, and Cancel / Retry.

import { get, post, download } from '../api.js';
import { h, badge, dl, alertBox, confirmInline, toast, keepFocus, clear } from '../ui.js';
import { when, duration, ago, num, money } from '../format.js';
import { analyze, ranges } from '../errors.js';

const REFRESH_MS = 1500;
/** Seconds of samples the live rate is measured over. */
const RATE_WINDOW = 20;
const TERMINAL = new Set(['completed', 'failed', 'expired', 'cancelled']);
const STEPS = [
  ['created_at', 'created'],
  ['in_progress_at', 'in progress'],
  ['finalizing_at', 'finalizing'],
  ['cancelling_at', 'cancelling'],
  ['completed_at', 'completed'],
  ['failed_at', 'failed'],
  ['expired_at', 'expired'],
  ['cancelled_at', 'cancelled'],
];

const enc = encodeURIComponent;

function header(b) {
  return [
    h('h1', { tabindex: '-1' }, 'Batch ', h('code', { class: 'break' }, b.id)),
    h('p', {}, 'Status: ', h('span', { id: 'batch-status', 'data-status': b.status }, badge(b.status))),
  ];
}

function endOf(b) {
  return b.completed_at || b.failed_at || b.expired_at || b.cancelled_at || b.finalizing_at;
}

/** Lines per second: over the last samples while running, else on average. */
function rateOf(b, samples) {
  const recent = samples.filter((s) => s.t >= samples[samples.length - 1].t - RATE_WINDOW);
  const [first, last] = [recent[0], recent[recent.length - 1]];
  if (b.status === 'in_progress' && last.t - first.t >= 3 && last.done > first.done) {
    return (last.done - first.done) / (last.t - first.t);
  }
  const start = b.in_progress_at;
  const end = TERMINAL.has(b.status) || b.status === 'finalizing' ? endOf(b) : Date.now() / 1000;
  const done = b.request_counts.completed + b.request_counts.failed;
  return start && end > start && done ? done / (end - start) : null;
}

function progressCard(b, samples) {
  const c = b.request_counts;
  const done = c.completed + c.failed;
  const rate = rateOf(b, samples);
  const eta = b.status === 'in_progress' && rate ? (c.total - done) / rate : null;
  return h(
    'div',
    { class: 'card' },
    h('h2', {}, 'Progress'),
    h('p', { class: 'big' }, `${num(done)} / ${num(c.total)}`),
    h('progress', { class: 'wide', max: c.total || 1, value: done, 'aria-label': `${done} of ${c.total} lines done` }),
    dl([
      ['Completed', h('span', { id: 'counts-completed' }, num(c.completed))],
      ['Failed', h('span', { id: 'counts-failed' }, num(c.failed))],
      ['Rate', rate ? `${rate.toFixed(rate < 10 ? 2 : 0)} lines/s` : '—'],
      ['ETA', eta != null ? duration(eta) : TERMINAL.has(b.status) ? 'ended' : '—'],
    ]),
  );
}

function usageCard(b) {
  const u = b.usage;
  const c = b.cost;
  return h(
    'div',
    { class: 'card' },
    h('h2', {}, 'Tokens and cost'),
    dl([
      ['Input tokens', u ? `${num(u.input_tokens)} (${num(u.input_tokens_details.cached_tokens)} cached)` : '—'],
      ['Output tokens', u ? num(u.output_tokens) : '—'],
      ['Total tokens', u ? num(u.total_tokens) : '—'],
      ['Cost', h('span', { id: 'batch-cost' }, c ? money(c.total) : '—')],
      ['Input / output', c ? `${money(c.input)} / ${money(c.output)}` : null],
      ['Unpriced lines', c && c.unpriced_lines ? num(c.unpriced_lines) : null],
    ]),
  );
}

function detailsCard(b) {
  return h(
    'div',
    { class: 'card' },
    h('h2', {}, 'Details'),
    dl([
      ['Model', b.model || '—'],
      ['Endpoint', h('code', {}, b.endpoint)],
      ['Window', b.completion_window],
      ['Created', when(b.created_at)],
      ['Window ends', b.expires_at && !TERMINAL.has(b.status) ? `${when(b.expires_at)} (${ago(b.expires_at)})` : null],
    ]),
  );
}

function fileRow(label, id, slug, onError) {
  if (!id) return [label, h('span', { class: 'muted' }, 'none')];
  const button = h('button', { type: 'button', class: 'secondary', id: `dl-${slug}`, 'data-focus': `dl-${slug}` }, `Download ${slug}`);
  button.addEventListener('click', async () => {
    try {
      const f = await get(`/v1/files/${enc(id)}`);
      await download(id, f.filename);
    } catch (e) {
      onError(e);
    }
  });
  return [label, h('span', {}, h('code', { class: 'break' }, id), ' ', button)];
}

function filesCard(b, onError) {
  return h(
    'div',
    { class: 'card' },
    h('h2', {}, 'Files'),
    dl([
      fileRow('Input', b.input_file_id, 'input', onError),
      fileRow('Output', b.output_file_id, 'output', onError),
      fileRow('Errors', b.error_file_id, 'errors', onError),
    ]),
  );
}

function metadataCard(b) {
  const pairs = Object.entries(b.metadata || {});
  return h(
    'div',
    { class: 'card' },
    h('h2', {}, 'Metadata'),
    pairs.length
      ? dl(pairs.map(([k, v]) => [k, k === 'retry_of' ? h('a', { href: `#/batches/${enc(v)}`, id: 'retry-of' }, v) : v]))
      : h('p', { class: 'muted' }, 'none'),
  );
}

function timelineOf(b) {
  const steps = STEPS.filter(([k]) => b[k] != null).map(([k, label]) => ({ label, t: b[k] }));
  return [
    h('h2', {}, 'Timeline'),
    h(
      'ol',
      { class: 'timeline', id: 'timeline' },
      steps.map((s, i) =>
        h(
          'li',
          { class: 'done' },
          h('strong', {}, s.label),
          h('span', { class: 'when' }, when(s.t)),
          i > 0 && h('span', { class: 'muted' }, `+${duration(s.t - steps[i - 1].t)}`),
        ),
      ),
      !TERMINAL.has(b.status) && b.expires_at && h('li', {}, h('strong', {}, 'window ends'), h('span', { class: 'when' }, `${when(b.expires_at)} (${ago(b.expires_at)})`)),
    ),
  ];
}

function groupBox(g, examples) {
  return h(
    'div',
    { class: 'group', 'data-code': g.key },
    h('h3', {}, h('code', {}, g.label), `${num(g.count)} line${g.count === 1 ? '' : 's'}`, g.tag && h('span', { class: 'tag' }, g.tag)),
    g.lines.length ? h('p', {}, 'Lines ', h('span', { class: 'lines' }, ranges(g.lines))) : null,
    h('ul', {}, examples),
  );
}

function validationErrors(b) {
  const data = b.errors?.data || [];
  if (!data.length) return null;
  const groups = new Map();
  for (const e of data) {
    const g = groups.get(e.code) || { key: e.code, label: e.code, count: 0, lines: [], examples: [] };
    g.count += 1;
    if (e.line != null) g.lines.push(e.line);
    if (g.examples.length < 3) g.examples.push(e);
    groups.set(e.code, g);
  }
  return [
    h('h2', {}, 'Validation errors'),
    [...groups.values()].map((g) =>
      groupBox(g, g.examples.map((e) => h('li', {}, e.line != null ? `line ${e.line}: ` : '', e.message))),
    ),
  ];
}

async function showErrors(b, section) {
  clear(section);
  const invalid = validationErrors(b);
  if (invalid) section.append(...invalid.flat());
  if (!b.error_file_id) return;
  const status = h('p', { class: 'muted' }, 'Reading the error file…');
  section.append(h('h2', {}, 'Failed lines'), status);
  try {
    const r = await analyze(b);
    status.textContent =
      `${num(r.read)} failed line${r.read === 1 ? '' : 's'} read, grouped by code.` +
      (r.errorsComplete ? '' : ' The error file is larger than the console reads: download it for the rest.') +
      (r.inputGone ? ' The input file is gone, so line numbers are not shown.' : '');
    for (const g of r.groups) {
      g.tag = g.retried ? 'retried by default' : 'refused for the request itself: retried with “all”';
      section.append(
        groupBox(
          g,
          g.examples.map((e) =>
            h('li', {}, e.line != null ? `line ${e.line} · ` : '', h('code', {}, e.custom_id ?? '(no custom_id)'), ` · ${e.message}`),
          ),
        ),
      );
    }
  } catch (e) {
    status.replaceWith(alertBox(e));
  }
}

function actionsOf(b, refresh, say) {
  const out = [];
  if (!TERMINAL.has(b.status) && b.status !== 'cancelling') {
    const cancel = h('button', { type: 'button', class: 'danger', id: 'btn-cancel' }, 'Cancel batch');
    cancel.addEventListener('click', () =>
      confirmInline(cancel, 'Cancel it? Lines in flight finish; the rest are not sent.', 'Yes, cancel', async () => {
        try {
          await post(`/v1/batches/${enc(b.id)}/cancel`);
          toast('Cancelling: in-flight lines finish first.');
          await refresh();
        } catch (e) {
          say(e);
        }
      }, 'btn-cancel'),
    );
    out.push(cancel);
  }
  if (TERMINAL.has(b.status) && (b.request_counts.failed > 0 || b.status === 'cancelled')) {
    const all = h('input', { type: 'checkbox', id: 'retry-all' });
    const retry = h('button', { type: 'button', id: 'btn-retry' }, 'Retry failed lines');
    retry.addEventListener('click', async () => {
      retry.disabled = true;
      try {
        const next = await post(`/v1/batches/${enc(b.id)}/retry`, { all: all.checked });
        toast(`Retry batch ${next.id} created.`);
        location.hash = `#/batches/${enc(next.id)}`;
      } catch (e) {
        say(e);
        retry.disabled = false;
      }
    });
    out.push(retry, h('label', { for: 'retry-all' }, all, 'Also lines refused for the request itself'));
  }
  return out;
}

export async function render(main, { parts }, ctx) {
  const id = parts[1];
  ctx.title(`Batch ${id}`);
  let b = await get(`/v1/batches/${enc(id)}`);
  const samples = [];
  const head = h('div');
  const actions = h('div', { class: 'actions', id: 'batch-actions' });
  const message = h('div', { id: 'batch-message' });
  const cards = h('div', { class: 'cards' });
  const timeline = h('section', { 'aria-label': 'Timeline' });
  const errors = h('section', { id: 'errors', 'aria-label': 'Errors' });
  main.append(h('p', {}, h('a', { href: '#/batches' }, '← Batches')), head, actions, message, cards, timeline, errors);
  const say = (e) => {
    clear(message);
    message.append(alertBox(e));
  };
  let shownStatus = null;
  const refresh = async () => {
    b = await get(`/v1/batches/${enc(id)}`);
    paint();
  };
  function paint() {
    samples.push({ t: Date.now() / 1000, done: b.request_counts.completed + b.request_counts.failed });
    if (samples.length > 100) samples.shift();
    keepFocus(head, () => header(b));
    keepFocus(cards, () => [progressCard(b, samples), usageCard(b), detailsCard(b), filesCard(b, say), metadataCard(b)]);
    keepFocus(timeline, () => timelineOf(b));
    // Actions change with the status only: rebuilding them on every refresh
    // would close a confirmation the user is answering.
    if (b.status !== shownStatus) {
      shownStatus = b.status;
      keepFocus(actions, () => actionsOf(b, refresh, say));
      if (TERMINAL.has(b.status)) showErrors(b, errors);
      else if (!errors.firstChild) errors.append(h('p', { class: 'muted' }, 'Failed lines are listed here once the batch ends and its error file is written.'));
    }
  }
  paint();
  ctx.every(REFRESH_MS, () => (TERMINAL.has(b.status) ? null : refresh()));
}
