// Picks the view from the address (/app/<view>), checks the login session, and draws the
// navigation. Each view is a module exporting render(main, ctx) that may return a cleanup.

import { h, clear, toast } from './dom.js';
import { currentUser, get, post } from './api.js';
import { standingNotice } from './money.js';

const VIEWS = {
  login: { load: () => import('./pages/login.js'), title: 'Log in', public: true },
  register: { load: () => import('./pages/login.js'), title: 'Register', public: true },
  inputs: { load: () => import('./pages/inputs.js'), title: 'Inputs', nav: true },
  feeds: { load: () => import('./pages/feeds.js'), title: 'Feeds', nav: true },
  graph: { load: () => import('./pages/graph.js'), title: 'Graph', nav: true },
  process: { load: () => import('./pages/process.js'), title: 'Process list' },
  account: { load: () => import('./pages/account.js'), title: 'Account', nav: true },
  billing: { load: () => import('./pages/billing.js'), title: 'Billing', nav: true, billing: true },
  // A share link (?share=) opens one app without logging in.
  apps: { load: () => import('./pages/apps.js'), title: 'Apps', nav: true, publicIf: (p) => p.has('share') },
  // Public dashboards and share links open without logging in.
  dashboards: {
    load: () => import('./pages/dashboards.js'), title: 'Dashboards', nav: true, publicIf: (p) => p.has('share') || p.has('id') || p.has('alias'),
  },
  admin: { load: () => import('./pages/admin.js'), title: 'Admin', nav: true, admin: true },
};

function viewName() {
  const name = location.pathname.replace(/^\/app\/?/, '').split('/')[0];
  return name || 'inputs';
}

/**
 * A hosted service's account, or null where the server does not bill (billing/account.json
 * says `enabled: false` there) or nobody is logged in.
 */
async function billingAccount(user) {
  if (!user) return null;
  try {
    const account = await get('billing/account.json');
    return account && account.enabled ? account : null;
  } catch { return null; }
}

/** A banner above every page while the balance is low or used up. */
function drawBanner(account) {
  const notice = standingNotice(account);
  document.getElementById('banner')?.remove();
  if (!notice) return;
  const banner = h(`div.banner.${notice.kind}`, { id: 'banner', role: notice.kind === 'error' ? 'alert' : 'status' },
    notice.text, ' ', h('a', { href: '/app/billing' }, 'Billing'));
  document.querySelector('header.top')?.after(banner);
}

function drawNav(user, current, billed) {
  const nav = document.getElementById('nav');
  if (!user) {
    clear(nav,
      h('a', { href: '/app/login', 'aria-current': current === 'login' ? 'page' : null }, 'Log in'),
      h('a', { href: '/app/register', 'aria-current': current === 'register' ? 'page' : null }, 'Register'));
    return;
  }
  const links = Object.entries(VIEWS)
    .filter(([, v]) => v.nav && (!v.admin || user.admin) && (!v.billing || billed))
    .map(([k, v]) => h('a', { href: `/app/${k}`, 'aria-current': k === current ? 'page' : null }, v.title));
  const logout = h('button.link', {
    type: 'button',
    onclick: async () => {
      try { await post('user/logout.json'); } catch { /* already gone */ }
      location.href = '/app/login';
    },
  }, 'Log out');
  clear(nav, links, h('span.who', user.username), logout);
}

async function start() {
  const name = viewName();
  const view = VIEWS[name];
  const main = document.getElementById('main');
  if (!view) {
    clear(main, h('h1', 'Not found'), h('p', 'There is no page here. ', h('a', { href: '/app/inputs' }, 'Go to inputs')));
    return;
  }
  // The view's modules load while the session is checked, not after.
  const loading = view.load();
  loading.catch(() => {}); // awaited below; a failure is shown there
  let user = null;
  try {
    user = await currentUser();
  } catch (e) {
    clear(main, h('p.error', `The server did not answer: ${e.message}`));
    return;
  }
  const params = new URLSearchParams(location.search);
  if (!user && !view.public && !view.publicIf?.(params)) {
    location.replace(`/app/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    return;
  }
  const account = await billingAccount(user);
  drawNav(user, name, account !== null);
  drawBanner(account);
  document.title = `${view.title} · ynni`;
  if (view.admin && !user.admin) {
    clear(main, h('h1', view.title), h('p', 'Only administrators can see this page.'));
    main.dataset.ready = name;
    return;
  }
  try {
    const mod = await loading;
    clear(main);
    const cleanup = await mod.render(main, { user, view: name, params: new URLSearchParams(location.search) });
    // Views hold live streams and timers; close them when the page goes away.
    if (typeof cleanup === 'function') window.addEventListener('pagehide', cleanup, { once: true });
    main.dataset.ready = name;
  } catch (e) {
    clear(main, h('h1', view.title), h('p.error', `This page failed to load: ${e.message}`));
    toast(e.message, 'error');
  }
}

start();
