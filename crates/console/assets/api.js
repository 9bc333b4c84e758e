// The gateway's own HTTP API, called with the signed-in key. The key lives
// in sessionStorage: it is gone when the tab closes and never leaves this
// origin (the page's policy allows no other).

const KEY = 'batchgate.key';
const WHO = 'batchgate.who';
const FLASH = 'batchgate.flash';

export function key() {
  return sessionStorage.getItem(KEY);
}

/** Who signed in: {master} or {key_id, key_alias, team_id, models, ...}. */
export function identity() {
  try {
    return JSON.parse(sessionStorage.getItem(WHO) || 'null');
  } catch {
    return null;
  }
}

export function signOut(message) {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(WHO);
  if (message) sessionStorage.setItem(FLASH, message);
}

/** A message left for the sign-in page (once). */
export function takeFlash() {
  const m = sessionStorage.getItem(FLASH);
  sessionStorage.removeItem(FLASH);
  return m;
}

/** An OpenAI-shaped error answer. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = body && typeof body === 'object' && body.error ? body.error : null;
    super(e?.message || (typeof body === 'string' && body) || `HTTP ${status}`);
    this.status = status;
    this.code = e?.code ?? null;
    this.param = e?.param ?? null;
  }
}

async function send(method, path, body, presented = key()) {
  const headers = { Authorization: `Bearer ${presented}` };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}

async function parsed(r) {
  const text = await r.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

/** One call; a refused key signs out and returns to the sign-in page. */
export async function api(method, path, body) {
  const r = await send(method, path, body);
  const data = await parsed(r);
  if (r.status === 401) {
    signOut('The gateway refused the key. Sign in again.');
    location.hash = '#/signin';
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});
export const del = (path) => api('DELETE', path);

/** Checks `candidate` and, if the gateway takes it, signs in with it. */
export async function signIn(candidate) {
  const probe = await send('GET', '/v1/batches?limit=1', undefined, candidate);
  if (!probe.ok) throw new ApiError(probe.status, await parsed(probe));
  // /key/info without a key names the caller's own key; the master key has
  // none and is told so (400).
  const info = await send('GET', '/key/info', undefined, candidate);
  const body = await parsed(info);
  const who = info.ok ? { master: false, ...body.info } : { master: true };
  sessionStorage.setItem(KEY, candidate);
  sessionStorage.setItem(WHO, JSON.stringify(who));
  return who;
}

/** Saves a file's content under `name` (through a blob: the content route needs the key). */
export async function download(fileId, name) {
  const r = await send('GET', `/v1/files/${encodeURIComponent(fileId)}/content`);
  if (!r.ok) throw new ApiError(r.status, await parsed(r));
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name || `${fileId}.jsonl`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Streams a file's lines (1-based numbers, as an editor counts them) to
 * `onLine(text, number)` until it returns false or `maxBytes` were read.
 * Returns {bytes, complete}.
 */
export async function eachLine(fileId, onLine, maxBytes = 16 * 1024 * 1024) {
  const r = await send('GET', `/v1/files/${encodeURIComponent(fileId)}/content`);
  if (!r.ok) throw new ApiError(r.status, await parsed(r));
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let rest = '';
  let number = 0;
  let bytes = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (value) {
      bytes += value.length;
      rest += decoder.decode(value, { stream: true });
    } else if (done) {
      rest += decoder.decode();
    }
    let i;
    while ((i = rest.indexOf('\n')) >= 0) {
      number += 1;
      const line = rest.slice(0, i).replace(/\r$/, '');
      rest = rest.slice(i + 1);
      if (onLine(number === 1 ? line.replace(/^\uFEFF/, '') : line, number) === false) {
        reader.cancel().catch(() => {});
        return { bytes, complete: false };
      }
    }
    if (done) break;
    if (bytes >= maxBytes) {
      reader.cancel().catch(() => {});
      return { bytes, complete: false };
    }
  }
  if (rest) onLine(rest, number + 1);
  return { bytes, complete: true };
}
