// Fleet: each deployment's health (/health probes it), lines in flight and
// pause state (/fleet), batch counts, and the instance answering.

import { get } from '../api.js';
import { h, table, badge, dl, keepFocus, alertBox } from '../ui.js';
import { num, ago, when } from '../format.js';

const REFRESH_MS = 3000;
/** /health asks every upstream, so it is asked less often. */
const HEALTH_EVERY = 4;

/** "model @ api_base" → health entry, from /health's two lists. */
function healthIndex(health) {
  const index = new Map();
  if (!health) return index;
  for (const e of health.healthy_endpoints || []) index.set(`${e.model}@${e.api_base}`, { ok: true });
  for (const e of health.unhealthy_endpoints || []) index.set(`${e.model}@${e.api_base}`, { ok: false, error: e.error });
  return index;
}

function healthCell(d, index, healthError) {
  if (healthError) return h('span', { class: 'muted' }, 'unknown');
  const e = index.get(`${d.model}@${d.api_base}`);
  if (!e) return h('span', { class: 'muted' }, 'probing…');
  return e.ok
    ? badge('healthy', 'healthy')
    : h('span', {}, badge('unhealthy', 'unhealthy'), ' ', h('span', { class: 'muted break' }, e.error || ''));
}

// This instance's limit towards the deployment: adaptive up to its share of
// max_parallel_requests, or that share fixed; with the server's queue and
// the answers per second the limit is decided from.
function concurrencyCell(c) {
  if (!c) return '';
  const limit = c.adaptive ? `${num(c.limit)} of ≤ ${num(c.ceiling)}` : `${num(c.limit)} (fixed)`;
  const detail = `queue ${c.queue_estimate.toFixed(1)} · ${c.requests_per_second.toFixed(1)}/s`;
  return h(
    'span',
    { title: 'concurrency limit (adaptive, up to this instance\'s share of max_parallel_requests) · server queue · answers per second' },
    limit,
    h('br'),
    h('span', { class: 'muted' }, detail),
  );
}

function deploymentsTable(fleet, index, healthError) {
  const now = fleet.now;
  return h(
    'div',
    { class: 'table-wrap', id: 'fleet-table' },
    table({
      caption: 'Deployments',
      columns: [
        { label: 'Model' },
        { label: 'Upstream' },
        { label: 'Health' },
        { label: 'In flight', num: true },
        { label: 'Concurrency', num: true },
        { label: 'Dispatch' },
        { label: 'Batch API', narrow: true },
      ],
      rows: fleet.deployments.map((d) => ({
        attrs: { 'data-deployment': d.id },
        cells: [
          d.model,
          h('span', { class: 'break' }, `${d.provider}/${d.served_model} at `, h('code', {}, d.api_base)),
          healthCell(d, index, healthError),
          h('span', { title: 'lines in flight / max_parallel_requests' }, `${num(d.in_flight)} / ${num(d.max_parallel_requests)}`),
          concurrencyCell(d.concurrency),
          d.paused_since != null
            ? h('span', { title: when(d.paused_since) }, badge('paused', 'paused'), ` since ${ago(d.paused_since, now)}`)
            : badge('healthy', 'dispatching'),
          d.batch_api,
        ],
      })),
    }),
  );
}

function summary(fleet) {
  const counts = Object.entries(fleet.batches).filter(([, n]) => n > 0);
  return h(
    'div',
    { class: 'cards' },
    h(
      'div',
      { class: 'card' },
      h('h2', {}, 'This instance'),
      dl([
        ['Instance', h('code', { class: 'break' }, fleet.instance)],
        ['Lines waiting', num(fleet.queue_depth_lines)],
      ]),
    ),
    h(
      'div',
      { class: 'card' },
      h('h2', {}, 'Batches by status'),
      counts.length ? dl(counts.map(([s, n]) => [s.replace('_', ' '), num(n)])) : h('p', { class: 'muted' }, 'No batches yet.'),
    ),
  );
}

/** This instance, those holding batch leases, and (on a shared database) every live instance. */
function instancesTable(fleet) {
  return h(
    'section',
    {},
    h(
      'div',
      { class: 'table-wrap', id: 'instances-table' },
      table({
        caption: 'Instances',
        columns: [
          { label: 'Instance' },
          { label: 'Batches held', num: true },
          { label: 'Working on' },
          { label: 'Last heartbeat' },
        ],
        rows: fleet.instances.map((i) => ({
          attrs: { 'data-instance': i.id },
          cells: [
            h('span', {}, h('code', { class: 'break' }, i.id), i.this ? ' (this one)' : ''),
            num(i.batches),
            (i.models || []).join(', '),
            i.this ? 'now (it answered)' : ago(i.heartbeat_at, fleet.now),
          ],
        })),
      }),
    ),
    h(
      'p',
      { class: 'muted', id: 'instances-note' },
      'Instances sharing one database divide batches through leases, renewed every third of the lease time, ',
      'and heartbeat twice a second with the models they send lines to, splitting each deployment\'s max_parallel_requests between them.',
    ),
  );
}

export async function render(main, _route, ctx) {
  ctx.title('Fleet');
  const top = h('div');
  const region = h('div');
  const note = h('div');
  main.append(
    h('h1', { tabindex: '-1' }, 'Fleet'),
    h('p', { class: 'muted' }, 'Health is what each upstream answers now; a paused deployment gets no new lines until its probe answers.'),
    note,
    top,
    region,
  );
  let health = null;
  let healthError = null;
  let ticks = 0;
  const probe = async () => {
    try {
      health = await get('/health');
      healthError = null;
    } catch (e) {
      healthError = e;
    }
  };
  const load = async () => {
    if (ticks % HEALTH_EVERY === 0) await probe();
    ticks += 1;
    const fleet = await get('/fleet');
    keepFocus(top, () => summary(fleet));
    keepFocus(region, () => [deploymentsTable(fleet, healthIndex(health), healthError), instancesTable(fleet)]);
    keepFocus(note, () => (healthError ? alertBox(healthError) : []));
  };
  await load();
  ctx.every(REFRESH_MS, load);
}
