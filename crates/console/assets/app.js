// The console's shell: hash routes (#/batches, #/batches/ID, #/files,
// #/spend, #/fleet, #/signin), the signed-in header, and each view's live
// refresh, stopped when the view is left.

import { key, identity, signOut, ApiError } from './api.js';
import { clear, alertBox } from './ui.js';
import * as signin from './views/signin.js';
import * as batches from './views/batches.js';
import * as batch from './views/batch.js';
import * as files from './views/files.js';
import * as spend from './views/spend.js';
import * as fleet from './views/fleet.js';

const main = document.getElementById('main');

const ROUTES = [
  { nav: 'batches', view: batches, match: (p) => p[0] === 'batches' && p.length === 1 },
  { nav: 'batches', view: batch, match: (p) => p[0] === 'batches' && p.length === 2 },
  { nav: 'files', view: files, match: (p) => p[0] === 'files' },
  { nav: 'spend', view: spend, match: (p) => p[0] === 'spend' },
  { nav: 'fleet', view: fleet, match: (p) => p[0] === 'fleet' },
];

let current = null;
let first = true;

function parseHash() {
  const raw = location.hash.startsWith('#/') ? location.hash.slice(2) : '';
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

function shell(signedIn) {
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('who').hidden = !signedIn;
  if (!signedIn) return;
  const who = identity() || {};
  const label = who.master
    ? 'Master key'
    : [`Key ${who.key_alias || who.key_id || ''}`, who.team_id && `team ${who.team_id}`].filter(Boolean).join(' · ');
  document.getElementById('who-label').textContent = label;
}

function markNav(name) {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** What a view gets: its refresh loop, title, and whether it is still shown. */
function context(session) {
  return {
    identity: identity(),
    alive: () => current === session,
    title(t) {
      document.title = `${t} · batchgate`;
    },
    /** Runs `fn` every `ms` while the view is shown and the tab visible. */
    every(ms, fn) {
      const tick = async () => {
        if (current !== session) return;
        if (!document.hidden) {
          try {
            await fn();
          } catch (e) {
            if (!(e instanceof ApiError && e.status === 401)) console.warn('refresh failed', e);
          }
        }
        if (current === session) session.timers.push(setTimeout(tick, ms));
      };
      session.timers.push(setTimeout(tick, ms));
    },
  };
}

async function route() {
  if (current) current.timers.forEach(clearTimeout);
  const session = { timers: [] };
  current = session;
  const { parts, params } = parseHash();
  let view = signin;
  if (key()) {
    const found = ROUTES.find((r) => r.match(parts));
    if (!found) {
      location.replace('#/batches');
      return;
    }
    view = found.view;
    markNav(found.nav);
  } else if (parts[0] !== 'signin') {
    location.replace('#/signin');
    return;
  }
  shell(Boolean(key()));
  clear(main);
  try {
    await view.render(main, { parts, params }, context(session));
  } catch (e) {
    if (current === session) main.append(alertBox(e, 'view-error'));
  }
  // A new view is announced by moving focus to its heading (not on the
  // first load, where focus belongs at the top of the page).
  if (!first && current === session) main.querySelector('h1')?.focus();
  first = false;
}

document.getElementById('signout').addEventListener('click', () => {
  signOut();
  location.hash = '#/signin';
});
document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', route);
route();
