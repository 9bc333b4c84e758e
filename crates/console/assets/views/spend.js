// Spend: by day, and by model, team and key over time, from the spend
// ledger (/global/spend/report, /spend/logs: master key); budgets and what
// is left of them from /key/info and /team/info (a virtual key sees its own).

import { get } from '../api.js';
import { h, table, dl, alertBox } from '../ui.js';
import { dec, money, num, day, share, when } from '../format.js';

/** Groups shown as columns of the over-time table; the rest add up in "other". */
const TOP = 5;
/** Budgets looked up at most per kind (one call each). */
const MAX_BUDGETS = 20;
const enc = encodeURIComponent;

function hashOf(q) {
  return `#/spend?${new URLSearchParams(q)}`;
}

function rangeQuery(q) {
  return new URLSearchParams({ start_date: q.start, end_date: q.end });
}

/** Budget rows: who, spent, max, left (exact), a bar of the share used, next reset. */
function budgetTable(caption, entries) {
  const rows = entries.map((e) => {
    const spent = dec(e.spend);
    const max = e.max_budget != null ? dec(e.max_budget) : null;
    const left = max != null ? max - spent : null;
    return [
      h('span', { class: 'break' }, e.label),
      money(spent),
      max != null ? money(max) : 'no limit',
      left != null ? h('span', { class: left <= 0n ? 'badge s-failed' : '' }, money(left)) : '—',
      max != null ? h('progress', { max: 1, value: Math.min(1, share(spent, max)), 'aria-label': `${e.label}: share of budget used` }) : '—',
      e.budget_reset_at ? when(e.budget_reset_at) : '—',
    ];
  });
  return h(
    'div',
    { class: 'table-wrap' },
    table({
      caption,
      columns: [{ label: 'Who' }, { label: 'Spent', num: true }, { label: 'Budget', num: true }, { label: 'Left', num: true }, { label: 'Used' }, { label: 'Resets', narrow: true }],
      rows,
      empty: 'None.',
    }),
  );
}

function groupTable(caption, groups, label) {
  return h(
    'div',
    { class: 'table-wrap' },
    table({
      caption,
      columns: [{ label }, { label: 'Spend', num: true }, { label: 'Lines', num: true }, { label: 'Input tokens', num: true, narrow: true }, { label: 'Output tokens', num: true, narrow: true }],
      rows: groups.map((g) => [g.key ?? '(none)', money(g.spend), num(g.lines), num(g.input_tokens), num(g.output_tokens)]),
      empty: 'No spend in this range.',
    }),
  );
}

function dayBars(days) {
  const max = days.reduce((m, g) => (dec(g.spend) > m ? dec(g.spend) : m), 0n);
  return h(
    'div',
    { class: 'bars', role: 'list', 'aria-label': 'Spend per day' },
    days.map((g) => {
      const fill = h('div', { class: 'fill' });
      fill.style.width = `${Math.max(0.5, share(dec(g.spend), max) * 100)}%`;
      return h('div', { class: 'row', role: 'listitem' }, h('span', {}, g.key), h('div', {}, fill), h('span', { class: 'num' }, money(g.spend)));
    }),
  );
}

/** Days × the biggest groups of `dim` (model, team_id or key_id), from the ledger rows. */
function overTime(rows, dim) {
  const totals = new Map();
  for (const r of rows) totals.set(r[dim] ?? '(none)', (totals.get(r[dim] ?? '(none)') || 0n) + dec(r.spend));
  const top = [...totals.entries()].sort((a, b) => (b[1] > a[1] ? 1 : -1)).slice(0, TOP).map(([k]) => k);
  const cols = [...top, ...(totals.size > top.length ? ['other'] : [])];
  const byDay = new Map();
  for (const r of rows) {
    const k = r[dim] ?? '(none)';
    const col = top.includes(k) ? k : 'other';
    const m = byDay.get(r.day) || new Map();
    m.set(col, (m.get(col) || 0n) + dec(r.spend));
    byDay.set(r.day, m);
  }
  const days = [...byDay.keys()].sort().reverse();
  return h(
    'div',
    { class: 'table-wrap' },
    table({
      caption: `Spend per day by ${dim.replace('_id', '')}`,
      columns: [{ label: 'Day' }, ...cols.map((c) => ({ label: c, num: true }))],
      rows: days.map((d) => [d, ...cols.map((c) => money(byDay.get(d).get(c) || 0n))]),
      empty: 'No spend in this range.',
    }),
  );
}

async function budgetsFor(teams, keys) {
  const teamInfos = await Promise.all(
    teams.slice(0, MAX_BUDGETS).map((t) => get(`/team/info?team_id=${enc(t)}`).then((r) => ({ label: `team ${t}`, ...r.team_info })).catch(() => null)),
  );
  const keyInfos = await Promise.all(
    keys.slice(0, MAX_BUDGETS).map((k) => get(`/key/info?key=${enc(k)}`).then((r) => ({ label: r.info.key_alias ? `${k} (${r.info.key_alias})` : k, ...r.info })).catch(() => null)),
  );
  return { teams: teamInfos.filter(Boolean), keys: keyInfos.filter(Boolean) };
}

async function masterView(root, q) {
  const range = rangeQuery(q);
  const report = (by) => get(`/global/spend/report?${range}&group_by=${by}`);
  const [days, models, teams, keys, logs] = await Promise.all([
    report('day'),
    report('model'),
    report('team'),
    report('key'),
    get(`/spend/logs?${range}&limit=100000`),
  ]);
  const total = days.reduce((s, g) => s + dec(g.spend), 0n);
  const lines = days.reduce((s, g) => s + g.lines, 0);
  const budgets = await budgetsFor(
    teams.map((g) => g.key).filter(Boolean),
    keys.map((g) => g.key).filter(Boolean),
  );
  root.append(
    h('div', { class: 'cards' }, h('div', { class: 'card' }, h('h2', {}, 'In this range'), h('p', { class: 'big', id: 'spend-total' }, money(total)), dl([['Lines billed', num(lines)], ['Days with spend', num(days.length)]]))),
    h('section', {}, h('h2', {}, 'Per day'), days.length ? dayBars(days) : h('p', { class: 'muted' }, 'No spend in this range.')),
    h('section', {}, overTime(logs, q.by === 'team' ? 'team_id' : q.by === 'key' ? 'key_id' : 'model')),
    h('section', { class: 'stack' }, groupTable('By model', models, 'Model'), groupTable('By team', teams, 'Team'), groupTable('By key', keys, 'Key')),
    h(
      'section',
      {},
      h('h2', {}, 'Budgets'),
      h('p', { class: 'muted' }, 'Teams and keys with spend in this range (the API lists no keys otherwise).'),
      budgetTable('Teams', budgets.teams),
      h('p'),
      budgetTable('Keys', budgets.keys),
    ),
  );
}

async function keyView(root, who) {
  const info = (await get('/key/info')).info;
  const entries = [{ label: info.key_alias ? `${info.key_id} (${info.key_alias})` : info.key_id, ...info }];
  const teams = [];
  if (info.team_id) {
    try {
      const t = await get(`/team/info?team_id=${enc(info.team_id)}`);
      teams.push({ label: `team ${info.team_id}`, ...t.team_info });
    } catch {
      // A team named on a key need not have a row (no /team/new): no budget.
    }
  }
  root.append(
    h('div', { class: 'note' }, 'Breakdowns by day, model, team and key come from the spend ledger, which only the master key may read. Your key and team budgets:'),
    budgetTable('Your key', entries),
    h('p'),
    budgetTable('Your team', teams),
    who.models?.length ? h('p', { class: 'muted' }, `Models this key may use: ${who.models.join(', ')}.`) : null,
  );
}

export async function render(main, { params }, ctx) {
  ctx.title('Spend');
  const today = new Date();
  const monthAgo = new Date(today.getTime() - 29 * 86400_000);
  const q = { start: params.get('start') || day(monthAgo), end: params.get('end') || day(today), by: params.get('by') || 'model' };
  const who = ctx.identity || {};
  const start = h('input', { type: 'date', id: 's-start', value: q.start });
  const end = h('input', { type: 'date', id: 's-end', value: q.end });
  const by = h('select', { id: 's-by' }, ['model', 'team', 'key'].map((k) => h('option', { value: k, selected: k === q.by }, k)));
  const apply = h('form', { class: 'toolbar', 'aria-label': 'Range' },
    h('label', { for: 's-start' }, 'From', start),
    h('label', { for: 's-end' }, 'To', end),
    h('label', { for: 's-by' }, 'Over time by', by),
    h('button', { type: 'submit' }, 'Show'),
  );
  apply.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = hashOf({ start: start.value, end: end.value, by: by.value });
  });
  const root = h('div', { id: 'spend' });
  main.append(h('h1', { tabindex: '-1' }, 'Spend'), who.master ? apply : null, h('p', { class: 'muted' }, 'Days are UTC. Amounts are exact; batch lines are billed at the batch price.'), root);
  try {
    await (who.master ? masterView(root, q) : keyView(root, who));
  } catch (e) {
    root.append(alertBox(e));
  }
}
