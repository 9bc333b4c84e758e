// DOM helpers. Text always goes in as text nodes (never as HTML), so
// nothing the API returns can run as script.

/** h('a', {href, class, onclick, 'aria-x': …}, child, [children], 'text') */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'checked' || k === 'selected' || k === 'value' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
}

const LABELS = {
  in_progress: 'in progress',
};

export function statusLabel(s) {
  return LABELS[s] || s;
}

export function badge(status, text = statusLabel(status)) {
  return h('span', { class: `badge s-${status}` }, text);
}

/**
 * A table: columns [{label, num, narrow}], rows of cells (nodes or text),
 * each row optionally {cells, attrs}. `empty` shows when there are no rows.
 */
export function table({ caption, columns, rows, empty = 'Nothing here yet.' }) {
  const th = columns.map((c) =>
    h('th', { scope: 'col', class: [c.num && 'num', c.narrow && 'hide-narrow'].filter(Boolean).join(' ') || null }, c.label),
  );
  const body = rows.length
    ? rows.map((r) => {
        const cells = Array.isArray(r) ? r : r.cells;
        return h(
          'tr',
          Array.isArray(r) ? {} : r.attrs,
          cells.map((cell, i) =>
            h('td', { class: [columns[i].num && 'num', columns[i].narrow && 'hide-narrow', columns[i].cls].filter(Boolean).join(' ') || null }, cell),
          ),
        );
      })
    : [h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, empty))];
  return h('table', {}, caption && h('caption', {}, caption), h('thead', {}, h('tr', {}, th)), h('tbody', {}, body));
}

/**
 * Replaces `container`'s children with `make()`'s, keeping keyboard focus
 * on the element with the same `data-focus` key: live refreshes must not
 * throw a keyboard user back to the top of the page.
 */
export function keepFocus(container, make) {
  const active = document.activeElement;
  const focusKey = active && container.contains(active) ? active.getAttribute('data-focus') : null;
  clear(container);
  append(container, [make()]);
  if (focusKey) container.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`)?.focus();
}

/** A definition list of [term, value] pairs (null values skipped). */
export function dl(pairs) {
  return h(
    'dl',
    {},
    pairs.filter(([, v]) => v != null).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
  );
}

/** A short-lived message, read by screen readers (the region is live). */
export function toast(message) {
  const el = document.getElementById('toast');
  el.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => {
    el.textContent = '';
  }, 6000);
}

/** An error the user should see, in the view, announced. */
export function alertBox(err, id) {
  const status = err && err.status ? ` (HTTP ${err.status}${err.code ? `, ${err.code}` : ''})` : '';
  return h('div', { class: 'alert', role: 'alert', id }, `${err?.message || err}${status}`);
}

/**
 * Replaces `button` with an inline "are you sure" choice; `onYes` runs on
 * confirmation. Keyboard focus moves to the choice and back.
 */
export function confirmInline(button, question, yesLabel, onYes, id) {
  const yes = h('button', { type: 'button', class: 'danger', id: id && `${id}-confirm` }, yesLabel);
  const no = h('button', { type: 'button', class: 'secondary' }, 'Keep it');
  const box = h('span', { class: 'confirm', role: 'group', 'aria-label': question }, question, yes, no);
  no.addEventListener('click', () => {
    box.replaceWith(button);
    button.focus();
  });
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    no.disabled = true;
    try {
      await onYes();
    } finally {
      if (box.isConnected) box.replaceWith(button);
    }
  });
  button.replaceWith(box);
  yes.focus();
}

/** Who owns a listed object: the master key, or key and team. */
export function ownerLabel(owner) {
  if (!owner) return '—';
  if (!owner.key_id && !owner.team_id) return 'master';
  return [owner.key_id, owner.team_id && `team ${owner.team_id}`].filter(Boolean).join(' · ');
}

/** A link that looks like a button. */
export function linkButton(href, text, attrs = {}) {
  return h('a', { href, class: 'button secondary', ...attrs }, text);
}

/** A long ID shortened for tables ("batch_AbC…x7IA"), whole in its title. */
export function shortId(id) {
  if (!id || id.length <= 22) return id;
  const cut = id.indexOf('_') >= 0 && id.indexOf('_') < 8 ? id.indexOf('_') + 1 : id.indexOf('-') + 1;
  return `${id.slice(0, cut + 6)}…${id.slice(-5)}`;
}
