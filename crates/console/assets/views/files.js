// Files: the caller's files with purpose, size and expiry; download,
// delete, and "create a batch from this file".

import { get, post, del, download } from '../api.js';
import { h, table, alertBox, confirmInline, toast, keepFocus, clear, shortId } from '../ui.js';
import { ago, when, bytes } from '../format.js';

const PAGE = 20;
const PURPOSES = ['batch', 'batch_output', 'user_data', 'fine-tune', 'assistants', 'vision', 'evals'];
const ENDPOINTS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/score', '/v1/rerank'];
const enc = encodeURIComponent;

function hashOf(q) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v) p.set(k, v);
  const s = p.toString();
  return `#/files${s ? `?${s}` : ''}`;
}

/** The inline form that creates a batch over `f`. */
function createForm(f, say) {
  const endpoint = h('select', { id: `ep-${f.id}` }, ENDPOINTS.map((e) => h('option', { value: e }, e)));
  const windowIn = h('input', { id: `win-${f.id}`, value: '24h', size: 5 });
  const submit = h('button', { type: 'submit', id: `create-${f.id}` }, 'Create batch');
  const form = h(
    'form',
    { class: 'actions', 'aria-label': `New batch from ${f.filename}` },
    h('label', { for: `ep-${f.id}` }, 'Endpoint', endpoint),
    h('label', { for: `win-${f.id}` }, 'Window', windowIn),
    submit,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const b = await post('/v1/batches', { input_file_id: f.id, endpoint: endpoint.value, completion_window: windowIn.value.trim() });
      toast(`Batch ${b.id} created.`);
      location.hash = `#/batches/${enc(b.id)}`;
    } catch (err) {
      say(err);
      submit.disabled = false;
    }
  });
  return form;
}

function actionsOf(f, reload, say) {
  const cell = h('div', { class: 'actions' });
  const dl = h('button', { type: 'button', class: 'secondary', 'data-focus': `dl-${f.id}` }, 'Download');
  dl.addEventListener('click', () => download(f.id, f.filename).catch(say));
  const rm = h('button', { type: 'button', class: 'secondary', id: `rm-${f.id}` }, 'Delete');
  rm.addEventListener('click', () =>
    confirmInline(rm, `Delete ${f.filename}?`, 'Yes, delete', async () => {
      try {
        await del(`/v1/files/${enc(f.id)}`);
        toast(`${f.filename} deleted.`);
        await reload();
      } catch (e) {
        say(e);
      }
    }, `rm-${f.id}`),
  );
  cell.append(dl, rm);
  if (f.purpose === 'batch') {
    const make = h('button', { type: 'button', id: `new-${f.id}` }, 'Create batch…');
    make.addEventListener('click', () => {
      const form = createForm(f, say);
      make.replaceWith(form);
      form.querySelector('select').focus();
    });
    cell.append(make);
  }
  return cell;
}

export async function render(main, { params }, ctx) {
  ctx.title('Files');
  const q = { purpose: params.get('purpose') || '', after: params.get('after') || '' };
  const purposeSel = h(
    'select',
    { id: 'f-purpose', onchange: () => (location.hash = hashOf({ purpose: purposeSel.value })) },
    h('option', { value: '' }, 'any'),
    PURPOSES.map((p) => h('option', { value: p, selected: p === q.purpose }, p)),
  );
  const message = h('div', { id: 'files-message' });
  const region = h('div', { class: 'table-wrap', id: 'files-table' });
  const pager = h('nav', { class: 'actions', 'aria-label': 'Pages' });
  const say = (e) => {
    clear(message);
    message.append(alertBox(e));
  };
  main.append(
    h('h1', { tabindex: '-1' }, 'Files'),
    h('div', { class: 'toolbar' }, h('label', { for: 'f-purpose' }, 'Purpose', purposeSel)),
    h('p', { class: 'muted' }, 'Upload with the API, the openai SDK or ', h('code', {}, 'batchgate submit'), '; result files appear here when a batch ends.'),
    message,
    region,
    pager,
  );

  async function load() {
    const p = new URLSearchParams({ limit: String(PAGE) });
    if (q.purpose) p.set('purpose', q.purpose);
    if (q.after) p.set('after', q.after);
    const page = await get(`/v1/files?${p}`);
    const now = Date.now() / 1000;
    const rows = page.data.map((f) => ({
      attrs: { 'data-file': f.id },
      cells: [
        h('code', { class: 'nowrap', title: f.id }, shortId(f.id)),
        h('span', { class: 'break' }, f.filename),
        f.purpose,
        bytes(f.bytes),
        h('span', { title: when(f.created_at), class: 'nowrap' }, ago(f.created_at, now)),
        f.expires_at ? h('span', { title: when(f.expires_at), class: 'nowrap' }, ago(f.expires_at, now)) : 'never',
        actionsOf(f, load, say),
      ],
    }));
    keepFocus(region, () =>
      table({
        caption: 'Files, newest first',
        columns: [{ label: 'File', narrow: true }, { label: 'Name' }, { label: 'Purpose' }, { label: 'Size', num: true }, { label: 'Created', narrow: true }, { label: 'Expires', narrow: true }, { label: 'Actions' }],
        rows,
        empty: 'No files.',
      }),
    );
    keepFocus(pager, () => [
      q.after && h('a', { href: hashOf({ purpose: q.purpose }), class: 'button secondary' }, '← Newest'),
      page.has_more && h('a', { href: hashOf({ ...q, after: page.last_id }), class: 'button secondary' }, 'Older →'),
    ]);
  }
  await load();
}
