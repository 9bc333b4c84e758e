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
    h(
      'div',
      { class: 'card' },
      h('h2', {}, 'Instances'),
      fleet.instances
        ? dl(fleet.instances.map((i) => [i.id, `heartbeat ${ago(i.heartbeat_at, fleet.now)}, ${num(i.batches)} batches`]))
        : h(
            'p',
            { id: 'instances-note' },
            'Not tracked yet: the store keeps no heartbeat per instance, so this view shows the instance that answered. ',
            'Instances sharing one database still divide the batches between them through leases.',
          ),
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
    keepFocus(region, () => deploymentsTable(fleet, healthIndex(health), healthError));
    keepFocus(note, () => (healthError ? alertBox(healthError) : []));
  };
  await load();
  ctx.every(REFRESH_MS, load);
}
