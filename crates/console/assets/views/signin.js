// Sign-in: a key, checked against the gateway before it is kept.

import { signIn, takeFlash } from '../api.js';
import { h } from '../ui.js';

export async function render(main, _route, ctx) {
  ctx.title('Sign in');
  const input = h('input', {
    id: 'key',
    name: 'key',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
    'aria-describedby': 'key-help',
  });
  const error = h('p', { id: 'signin-error', role: 'alert', class: 'alert', hidden: true });
  const flash = takeFlash();
  if (flash) {
    error.textContent = flash;
    error.hidden = false;
  }
  const button = h('button', { type: 'submit', id: 'signin-submit' }, 'Sign in');
  const form = h(
    'form',
    { 'aria-labelledby': 'signin-title' },
    h('label', { class: 'stack', for: 'key' }, 'API key', input),
    h(
      'p',
      { id: 'key-help', class: 'muted' },
      'The master key sees everything; a virtual key sees what it sees through the API. ',
      'The key is kept in this tab only (session storage) and sent to this gateway only.',
    ),
    error,
    h('div', {}, button),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    error.hidden = true;
    try {
      await signIn(input.value.trim());
      location.hash = '#/batches';
    } catch (err) {
      error.textContent =
        err.status === 401 ? 'The gateway does not know this key.' : `Sign-in failed: ${err.message}`;
      error.hidden = false;
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  main.append(
    h('div', { class: 'signin' }, h('h1', { id: 'signin-title', tabindex: '-1' }, 'Sign in to batchgate'), form),
  );
  input.focus();
}
