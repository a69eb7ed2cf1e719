// Log in and register (emoncms's user/login.json and user/register.json).

import { h, field } from '../dom.js';
import { post, FalseReply } from '../api.js';

export const REGISTRATION_CLOSED = 'Registration is closed on this server: ask its administrator for an account.';

/**
 * Where to go after logging in: only a view of this site (`/app/<view>` and its query), never
 * another site and never an API address (a crafted `next` could otherwise make the fresh
 * session call a state-changing GET, which the browser would mark same-origin).
 */
export function safeNext(params, origin = location.origin) {
  try {
    const u = new URL(params.get('next') || '', origin);
    if (u.origin === origin && /^\/app\/[a-z]+$/.test(u.pathname)) return u.pathname + u.search;
  } catch { /* not a URL */ }
  return '/app/inputs';
}

/**
 * Creates the account. The server answers a bare `false`, where other refusals carry a
 * message, when it takes no new accounts (users.registration is "closed", or "first-user"
 * and that user exists); anyone on this page is logged out, so nothing else means `false`.
 */
async function register(fields) {
  try {
    await post('user/register.json', fields);
  } catch (err) {
    if (err instanceof FalseReply) throw new Error(REGISTRATION_CLOSED);
    throw err;
  }
}

export async function render(main, ctx) {
  if (ctx.user) {
    location.replace('/app/inputs');
    return;
  }
  const registering = ctx.view === 'register';
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, maxlength: 30 });
  const email = h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true });
  const password = h('input', {
    name: 'password', type: 'password', required: true, minlength: 4,
    autocomplete: registering ? 'new-password' : 'current-password',
  });
  const remember = h('input', { type: 'checkbox', name: 'rememberme', id: 'rememberme' });
  const message = h('p.error', { role: 'alert' });
  const submit = h('button.primary', { type: 'submit' }, registering ? 'Register' : 'Log in');
  const form = h('form.card.narrow', {
    onsubmit: async (e) => {
      e.preventDefault();
      message.textContent = '';
      submit.disabled = true;
      try {
        if (registering) {
          await register({ username: username.value, password: password.value, email: email.value });
        }
        await post('user/login.json', {
          username: username.value, password: password.value,
          rememberme: remember.checked ? 1 : 0,
        });
        location.href = safeNext(ctx.params);
      } catch (err) {
        message.textContent = err.message;
        submit.disabled = false;
      }
    },
  },
  h('h1', registering ? 'Create an account' : 'Log in'),
  field('Username', username),
  registering ? field('Email', email) : null,
  field('Password', password),
  registering ? null : h('div.field.inline', remember, h('label', { for: 'rememberme' }, 'Remember me')),
  message,
  submit,
  h('p.muted', registering
    ? ['Already registered? ', h('a', { href: '/app/login' }, 'Log in')]
    : ['No account yet? ', h('a', { href: '/app/register' }, 'Register')]));
  main.append(form);
  username.focus();
}
