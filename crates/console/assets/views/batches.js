// Batches: the caller's batches, newest first, refreshed live; filtered by
// status and model; paged with the API's `after` cursor.

import { get } from '../api.js';
import { h, table, badge, keepFocus, ownerLabel, shortId } from '../ui.js';
import { ago, when, money, num } from '../format.js';

const STATUSES = ['validating', 'in_progress', 'finalizing', 'completed', 'failed', 'expired', 'cancelling', 'cancelled'];
/** Rows shown per page. */
const PAGE = 20;
/** With a filter, API pages of this size are scanned, at most MAX_SCANS of them per page shown. */
const SCAN = 100;
const MAX_SCANS = 5;
const REFRESH_MS = 2000;

const COLUMNS = [
  { label: 'Batch' },
  { label: 'Status' },
  { label: 'Model' },
  { label: 'Owner', narrow: true },
  { label: 'Created', narrow: true },
  { label: 'Progress' },
  { label: 'Completed', num: true },
  { label: 'Failed', num: true },
  { label: 'Cost', num: true, narrow: true },
];

function hashOf(q) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v) p.set(k, v);
  const s = p.toString();
  return `#/batches${s ? `?${s}` : ''}`;
}

/**
 * Up to PAGE batches after `after` that pass the filters, scanning API
 * pages; `next` is the cursor for the following page (null at the end).
 */
async function fetchRows({ status, model, after }) {
  const filtered = Boolean(status || model);
  const rows = [];
  let cursor = after || '';
  let more = true;
  for (let scans = 0; more && rows.length < PAGE && scans < (filtered ? MAX_SCANS : 1); scans += 1) {
    const q = new URLSearchParams({ limit: String(filtered ? SCAN : PAGE) });
    if (cursor) q.set('after', cursor);
    const page = await get(`/v1/batches?${q}`);
    more = page.has_more;
    for (const [i, b] of page.data.entries()) {
      cursor = b.id;
      if ((!status || b.status === status) && (!model || b.model === model)) rows.push(b);
      if (rows.length === PAGE) {
        more = more || i < page.data.length - 1;
        break;
      }
    }
  }
  return { rows, next: more ? cursor : null };
}

function progressCell(b) {
  const c = b.request_counts;
  const done = c.completed + c.failed;
  if (!c.total) return h('span', { class: 'muted' }, b.status === 'validating' ? 'validating' : '—');
  const pct = Math.floor((done * 100) / c.total);
  return h(
    'span',
    { class: 'nowrap' },
    h('progress', { max: c.total, value: done, 'aria-label': `${b.id}: ${done} of ${c.total} lines done` }),
    ` ${pct}%`,
  );
}

function rowOf(b) {
  const c = b.request_counts;
  return {
    attrs: { 'data-batch': b.id, 'data-status': b.status },
    cells: [
      h('a', { href: `#/batches/${encodeURIComponent(b.id)}`, class: 'mono nowrap', title: b.id, 'aria-label': `Batch ${b.id}`, 'data-focus': `open-${b.id}` }, shortId(b.id)),
      badge(b.status),
      b.model || '—',
      h('span', { class: 'break' }, ownerLabel(b.owner)),
      h('span', { title: when(b.created_at), class: 'nowrap' }, ago(b.created_at)),
      progressCell(b),
      num(c.completed),
      num(c.failed),
      b.cost ? money(b.cost.total) : '—',
    ],
  };
}

async function modelNames() {
  try {
    const fleet = await get('/fleet');
    return [...new Set(fleet.deployments.map((d) => d.model))].sort();
  } catch {
    return [];
  }
}

export async function render(main, { params }, ctx) {
  ctx.title('Batches');
  const q = { status: params.get('status') || '', model: params.get('model') || '', after: params.get('after') || '' };
  const statusSel = h(
    'select',
    { id: 'f-status', onchange: () => (location.hash = hashOf({ ...q, status: statusSel.value, after: '' })) },
    h('option', { value: '' }, 'any'),
    STATUSES.map((s) => h('option', { value: s, selected: s === q.status }, s.replace('_', ' '))),
  );
  const models = await modelNames();
  if (q.model && !models.includes(q.model)) models.push(q.model);
  const modelSel = h(
    'select',
    { id: 'f-model', onchange: () => (location.hash = hashOf({ ...q, model: modelSel.value, after: '' })) },
    h('option', { value: '' }, 'any'),
    models.map((m) => h('option', { value: m, selected: m === q.model }, m)),
  );
  const live = h('input', { type: 'checkbox', id: 'f-live', checked: true });
  const region = h('div', { class: 'table-wrap', id: 'batches-table' });
  const note = h('p', { class: 'muted', id: 'batches-note' });
  const pager = h('nav', { class: 'actions', 'aria-label': 'Pages' });
  main.append(
    h('h1', { tabindex: '-1' }, 'Batches'),
    h(
      'div',
      { class: 'toolbar' },
      h('label', { for: 'f-status' }, 'Status', statusSel),
      h('label', { for: 'f-model' }, 'Model', modelSel),
      h('label', { for: 'f-live' }, live, 'Live updates'),
      h('span', { class: 'grow' }),
      h('a', { href: '#/files', class: 'button secondary' }, 'Create a batch from a file'),
    ),
    note,
    region,
    pager,
  );

  async function load() {
    const { rows, next } = await fetchRows(q);
    keepFocus(region, () => table({ caption: 'Batches, newest first', columns: COLUMNS, rows: rows.map(rowOf), empty: 'No batches match.' }));
    note.textContent = q.status || q.model ? 'Filtered in the console over the newest batches of each page.' : '';
    keepFocus(pager, () => [
      q.after && h('a', { href: hashOf({ ...q, after: '' }), class: 'button secondary', 'data-focus': 'newest' }, '← Newest'),
      next && h('a', { href: hashOf({ ...q, after: next }), class: 'button secondary', id: 'older', 'data-focus': 'older' }, 'Older →'),
    ]);
  }
  await load();
  ctx.every(REFRESH_MS, () => (live.checked ? load() : null));
}
