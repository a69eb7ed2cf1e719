// Drives Debian's chromium through ynni's web UI like a user, against a running server:
//   node tests/browser/ui.mjs <base-url> <screenshot-dir>
// Exits non-zero on the first failed check; prints one line `RESULT {json}` with the
// measurements. tests/e2e/browser.rs starts the server and runs this; it can also be run by
// hand against any ynni (it registers a new user).

import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [base, shots = 'browser-screenshots'] = process.argv.slice(2);
if (!base) {
  console.error('usage: node ui.mjs <base-url> [screenshot-dir]');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const problems = [];
const result = {};
const step = (name) => console.log(`-- ${name}`);
function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(20000);
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`);
});
page.on('dialog', async (d) => {
  // Confirmations are accepted; any alert means injected script ran.
  if (d.type() === 'alert') problems.push(`alert fired: ${d.message()}`);
  await d.accept();
});
const shot = async (name, p = page) => p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

async function api(path, params = {}, body) {
  const q = new URLSearchParams(params).toString();
  const res = await fetch(`${base}/${path}${q ? `?${q}` : ''}`, body === undefined ? {} : { method: 'POST', body });
  const text = await res.text();
  check(res.ok, `${path} answered ${res.status}: ${text}`);
  try { return JSON.parse(text); } catch { return text; }
}

async function graphDraws() {
  return Number(await page.locator('#chart').getAttribute('data-draws')) || 0;
}
async function waitDrawsAbove(n) {
  await page.waitForFunction((k) => Number(document.querySelector('#chart')?.dataset.draws || 0) > k, n);
}
async function chartRange() {
  return page.locator('#chart').evaluate((c) => ({
    xmin: Number(c.dataset.xmin), xmax: Number(c.dataset.xmax),
    points: Number(c.dataset.points), interval: Number(c.dataset.interval),
  }));
}
async function canvasInkedPixels() {
  return page.locator('#chart canvas').first().evaluate((c) => {
    const ctx = c.getContext('2d');
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
    return n;
  });
}

try {
  const closedBase = process.env.YNNI_CLOSED_BASE;
  if (closedBase) {
    // A second server, run with users.registration = "closed", answers register.json `false`.
    step('registering where registration is closed says so');
    const closed = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const cp = await closed.newPage();
    cp.on('pageerror', (e) => problems.push(`page error (closed registration): ${e.message}`));
    await cp.goto(`${closedBase}/app/register`);
    await cp.waitForSelector('main[data-ready="register"]');
    await cp.getByLabel('Username').fill('latecomer');
    await cp.getByLabel('Email').fill('latecomer@example.com');
    await cp.getByLabel('Password').fill('correct horse');
    await cp.getByRole('button', { name: 'Register' }).click();
    const alert = cp.locator('main [role="alert"]');
    await cp.waitForFunction(() => document.querySelector('main [role="alert"]')?.textContent.trim());
    const said = (await alert.innerText()).trim();
    check(said === 'Registration is closed on this server: ask its administrator for an account.',
      `the register page says registration is closed (said "${said}")`);
    check(/\/app\/register$/.test(cp.url()), `the page stays on the register form (${cp.url()})`);
    await shot('00-registration-closed', cp);
    await closed.close();
  }

  const markupLogin = process.env.YNNI_MARKUP_LOGIN;
  if (markupLogin) {
    // An account whose stored names hold markup (as an emoncms import may): shown as text.
    step('stored markup is shown as text, never run');
    const [name, password] = markupLogin.split(':');
    const markup = process.env.YNNI_MARKUP;
    await page.goto(`${base}/app/login`);
    await page.getByLabel('Username').fill(name);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(/\/app\/inputs/);
    for (const view of ['inputs', 'feeds', 'graph', 'process?input=1']) {
      await page.goto(`${base}/app/${view}`);
      await page.waitForSelector('main[data-ready]');
      await page.getByText(markup).first().waitFor();
      check(await page.locator('main img, main [onerror]').count() === 0, `no element made from stored text on ${view}`);
    }
    await shot('00-stored-markup');
    await page.evaluate(() => fetch('/user/logout.json', { method: 'POST' }));
    await context.clearCookies();
  }

  const user = `ui${Date.now().toString(36)}`;
  step('register and log in');
  await page.goto(`${base}/`);
  await page.waitForURL(/\/app\/login/);
  await shot('01-login');
  await page.getByRole('link', { name: 'Register' }).first().click();
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Email').fill(`${user}@example.com`);
  await page.getByLabel('Password').fill('correct horse');
  await page.getByRole('button', { name: 'Register' }).click();
  await page.waitForURL(/\/app\/inputs/);
  await page.waitForSelector('main[data-ready="inputs"]');
  const account = await page.evaluate(() => fetch('/user/get.json').then((r) => r.json()));
  const key = account.apikey_write;
  check(/^[0-9a-f]{32}$/.test(key), 'the session reads the write apikey');

  step('an input appears after a post, and its value updates live');
  const now = Math.floor(Date.now() / 1000);
  await api('input/post', { node: 'emontx', fulljson: JSON.stringify({ power1: 100, vrms: 240.5 }), apikey: key });
  const row = page.locator('tr[data-input="emontx/power1"]');
  await row.waitFor();
  check((await row.locator('.value').innerText()).includes('100'), 'first value shown');
  await api('input/post', { node: 'emontx', fulljson: JSON.stringify({ power1: 250 }), apikey: key });
  await page.waitForFunction(() => document.querySelector('tr[data-input="emontx/power1"] .value')?.textContent.includes('250'));
  await shot('02-inputs');

  step('create a feed from the process-list editor');
  await row.getByRole('link', { name: /Process/ }).click();
  await page.waitForSelector('main[data-ready="process"]');
  await page.getByLabel('Process', { exact: true }).selectOption({ label: 'Log to feed' });
  await page.getByLabel('Feed', { exact: true }).selectOption('new');
  await page.getByLabel('Feed name').fill('power1');
  await page.getByLabel('Engine').selectOption('5');
  await page.getByLabel('Interval').selectOption('10');
  await page.getByRole('button', { name: 'Add step' }).click();
  await page.getByRole('button', { name: 'Save' }).click();
  // The status line itself: "Saved" as a substring also matches the hidden "Unsaved changes"
  // note, and the toast saying it may be gone before a busy machine looks.
  await page.locator('.save-status').filter({ hasText: /^Saved$/ }).waitFor();
  check(await page.locator('#steps li').count() === 1, 'one stored step');
  await shot('03-process');
  const feeds = await api('feed/list.json', { apikey: key });
  const feed = feeds.find((f) => f.name === 'power1');
  check(feed && feed.engine === '5', 'the editor created a PHPFina feed');
  const input = (await api('input/list.json', { apikey: key })).find((i) => i.name === 'power1');
  check(input.processList === `1:${feed.id}`, `stored process list is 1:${feed.id} (got ${input.processList})`);

  step('post data through the process list');
  const first = now - 3600;
  for (let t = first; t <= now; t += 30) {
    const v = 500 + 400 * Math.sin((t - first) / 600);
    await api('input/post', { node: 'emontx', time: t, fulljson: JSON.stringify({ power1: Math.round(v) }), apikey: key });
  }

  step('graph: draws, zooms with buttons and drag');
  await page.goto(`${base}/app/graph?feeds=${feed.id}&start=${first - 60}&end=${now + 60}`);
  await page.waitForFunction(() => Number(document.querySelector('#chart')?.dataset.points || 0) > 0);
  const before = await chartRange();
  check(before.points > 50, `graph drew ${before.points} points`);
  check(await canvasInkedPixels() > 500, 'the canvas has a plotted line');
  const plot = await page.locator('#chart .u-over').boundingBox();
  // Points come every 30 s into a 10 s feed, so some positions have no value ("—").
  let tipText = '';
  for (let i = 1; i < 20 && !/power1: \d/.test(tipText); i++) {
    await page.mouse.move(plot.x + (plot.width * i) / 20, plot.y + plot.height / 2);
    await page.locator('#chart .graph-tip').waitFor();
    tipText = await page.locator('#chart .graph-tip').innerText();
  }
  check(/power1: \d/.test(tipText), `the tooltip shows the value under the cursor (${tipText})`);
  check(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}/.test(tipText), `the tooltip's time is in ISO order (${tipText})`);
  await shot('04-graph');
  let draws = await graphDraws();
  await page.getByRole('button', { name: 'Zoom in' }).click();
  await waitDrawsAbove(draws);
  const zoomed = await chartRange();
  check(zoomed.xmax - zoomed.xmin < before.xmax - before.xmin, 'zoom in narrows the axis');
  draws = await graphDraws();
  const over = page.locator('#chart .u-over');
  const box = await over.boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await waitDrawsAbove(draws);
  const dragged = await chartRange();
  check(dragged.xmax - dragged.xmin < zoomed.xmax - zoomed.xmin, 'drag-select zooms in');
  check(/start=\d+/.test(page.url()) && /end=\d+/.test(page.url()), 'the view is in the address');
  const shared = await context.newPage();
  await shared.goto(page.url());
  await shared.waitForFunction(() => Number(document.querySelector('#chart')?.dataset.draws || 0) > 0);
  const restored = await shared.locator('#chart').evaluate((c) => [Number(c.dataset.xmin), Number(c.dataset.xmax)]);
  check(Math.abs(restored[0] - dragged.xmin) <= 60 && Math.abs(restored[1] - dragged.xmax) <= 60, 'a shared address restores the range');
  await shared.close();

  step('graph: x-axis labels are ISO dates and times, all inside the canvas');
  // Only a right axis leaves the least room left of the plot, and a range starting on the
  // hour puts a tick, with its date under it, right at the plot's left edge.
  const onHour = Math.floor(first / 3600) * 3600;
  await page.goto(`${base}/app/graph?feeds=${feed.id}&right=${feed.id}&start=${onHour}&end=${onHour + 7200}`);
  await page.waitForFunction(() => Number(document.querySelector('#chart')?.dataset.draws || 0) > 0);
  const axis = await page.locator('#chart').evaluate((c) => ({
    labels: JSON.parse(c.dataset.xlabels || '[]'),
    width: c.querySelector('canvas').getBoundingClientRect().width,
  }));
  check(axis.labels.length >= 3, `the x axis has labels (${JSON.stringify(axis.labels)})`);
  for (const [text, left, right] of axis.labels) {
    check(left >= 0 && right <= axis.width + 0.5,
      `x-axis label "${text}" spans ${left}–${right}px, inside the ${axis.width}px canvas`);
    check(text.split(' ').every((t) => /^(\d{4}(-\d{2}){0,2}|\d{2}:\d{2}(:\d{2})?)$/.test(t)),
      `x-axis label "${text}" is an ISO date or a 24-hour time`);
  }
  // The account's zone is UTC (the register form sends none).
  const startIso = new Date(onHour * 1000).toISOString();
  check(axis.labels[0][0] === `${startIso.slice(11, 16)} ${startIso.slice(0, 10)}`,
    `the first label is the start's time and date (${axis.labels[0][0]}, start ${startIso})`);
  await shot('04b-graph-right-axis');

  step('feeds page and CSV download');
  await page.goto(`${base}/app/feeds`);
  await page.waitForSelector('main[data-ready="feeds"]');
  await shot('05-feeds');
  await page.getByRole('button', { name: 'CSV of power1' }).click();
  const csvDialog = page.getByRole('dialog', { name: 'CSV of power1' });
  await csvDialog.getByLabel('Interval', { exact: true }).selectOption('60');
  const download = page.waitForEvent('download');
  await csvDialog.getByRole('button', { name: 'Download' }).click();
  const file = await (await download).path();
  const csv = readFileSync(file, 'utf8').trim().split('\n');
  check(csv.length > 10 && /^\d+,(-?[\d.]+|null)$/.test(csv[0]), `CSV has rows (${csv.length}; first ${csv[0]})`);
  result.csv_lines = csv.length;

  step('one-year 10 s feed: first draw and zoom redraw');
  const year = await api('feed/create.json', { tag: 'bench', name: 'year10s', engine: 5, options: '{"interval":10}', apikey: key });
  const slots = 365 * 8640;
  const yearStart = Math.floor((now - 365 * 86400) / 10) * 10;
  const chunk = 788400;
  for (let c = 0; c * chunk < slots; c++) {
    const n = Math.min(chunk, slots - c * chunk);
    const buf = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const t = c * chunk + i;
      buf[i] = 400 + 300 * Math.sin(t / 8640 * 2 * Math.PI) + 100 * Math.sin(t / 60);
    }
    await api('feed/upload.json', { id: year.feedid, start: yearStart + c * chunk * 10, interval: 10, npoints: n, apikey: key }, Buffer.from(buf.buffer));
  }
  const yearUrl = `${base}/app/graph?feeds=${year.feedid}&start=${yearStart}&end=${yearStart + slots * 10}`;
  const firstDraw = async (url) => {
    await page.goto(url);
    await page.waitForFunction(() => performance.getEntriesByName('ynni:graph:first-draw').length > 0, null, { timeout: 30000 });
    return Math.round(await page.evaluate(() => performance.getEntriesByName('ynni:graph:first-draw')[0].startTime));
  };
  // Without averaging (one sample per pixel), then the default (the mean of each pixel,
  // which reads the whole year on the server).
  result.year_first_draw_sampled_ms = await firstDraw(`${yearUrl}&avg=0`);
  result.year_first_draw_ms = await firstDraw(yearUrl);
  check(await canvasInkedPixels() > 500, 'the year graph is drawn');
  result.year_points_drawn = (await chartRange()).points;
  await shot('06-graph-year');
  const redraws = [];
  for (let i = 0; i < 5; i++) {
    draws = await graphDraws();
    await page.getByRole('button', { name: 'Zoom in' }).click();
    await waitDrawsAbove(draws);
    await page.waitForFunction((k) => performance.getEntriesByName('ynni:graph:redraw').length >= k, i + 1);
  }
  for (const m of await page.evaluate(() => performance.getEntriesByName('ynni:graph:redraw').map((e) => e.duration))) redraws.push(Math.round(m));
  result.year_zoom_redraw_ms = redraws;

  step('account and admin pages');
  await page.goto(`${base}/app/account`);
  await page.waitForSelector('main[data-ready="account"]');
  check((await page.locator('main').innerText()).includes(key), 'the write apikey is shown');
  await shot('07-account');
  await page.goto(`${base}/app/admin`);
  await page.waitForSelector('main[data-ready]');
  // The first account of a fresh server is its administrator (a run by hand may be that one).
  const session = await page.evaluate(() => fetch('/user/session.json').then((r) => r.json()));
  await page.getByText(session.admin ? 'Shard workers' : 'Only administrators').first().waitFor();
  if (markupLogin) {
    // The first account is the administrator.
    const admin = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const ap = await admin.newPage();
    ap.on('pageerror', (e) => problems.push(`page error (admin): ${e.message}`));
    const [name, password] = markupLogin.split(':');
    await ap.goto(`${base}/app/login?next=/app/admin`);
    await ap.getByLabel('Username').fill(name);
    await ap.getByLabel('Password').fill(password);
    await ap.getByRole('button', { name: 'Log in' }).click();
    await ap.waitForSelector('main[data-ready="admin"]');
    const text = await ap.locator('main').innerText();
    check(text.includes(user) && /Shard workers/.test(text), 'the admin page lists users and shards');
    await shot('08-admin', ap);
    await admin.close();
  }

  step('phone width: no sideways scrolling');
  const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, storageState: await context.storageState() });
  const p2 = await phone.newPage();
  p2.on('pageerror', (e) => problems.push(`page error (phone): ${e.message}`));
  for (const view of ['inputs', 'feeds', `graph?feeds=${feed.id}`, 'account']) {
    await p2.goto(`${base}/app/${view}`);
    await p2.waitForSelector('main[data-ready]');
    const width = await p2.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 362, `/app/${view} is ${width}px wide on a 360px screen`);
    await shot(`09-phone-${view.split('?')[0]}`, p2);
  }
  await phone.close();

  check(problems.length === 0, `no page errors, console errors or CSP violations:\n${problems.join('\n')}`);
  console.log(`RESULT ${JSON.stringify(result)}`);
  await browser.close();
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error(`page problems:\n${problems.join('\n')}`);
  try { await shot('failure'); } catch { /* the page may be gone */ }
  await browser.close();
  process.exit(1);
}
