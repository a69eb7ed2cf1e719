// Dashboards in Debian's chromium, against a running server with a seeded dashboard in
// emoncms's stored format (given in YNNI_*): the owner sees the widgets with the values the
// test knows, switches a feed with a button, adds a widget in the editor, moves and resizes
// it with the mouse, moves another with a finger (touch events), saves, and finds exactly the
// positions dragged to in the stored content. A share link then shows the dashboard to a
// phone with no session, read-only, loading nothing from any other site.
//   node tests/browser/dashboards.mjs <base-url> <screenshot-dir>

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, shots = 'browser-screenshots'] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const [userName, userPass] = process.env.YNNI_USER_LOGIN.split(':');
const dashId = process.env.YNNI_DASHBOARD;
const powerFeed = process.env.YNNI_POWER_FEED;
const problems = [];
const step = (name) => console.log(`-- ${name}`);
function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const watch = (p, who) => {
  p.on('pageerror', (e) => problems.push(`${who} page error: ${e.message}`));
  p.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) problems.push(`${who} console: ${m.text()}`);
  });
  // Nothing but this server: the content names an image elsewhere, which must not load.
  p.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) problems.push(`${who} fetched ${r.url()}`); });
};
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'UTC' });
const page = await context.newPage();
page.setDefaultTimeout(20000);
watch(page, 'owner');
page.on('dialog', (d) => d.accept());
const shot = async (name, p = page) => p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const widget = (p, id) => p.locator(`#dashboard .widget[data-id="${id}"]`);
const text = async (p, id) => (await widget(p, id).innerText()).trim();

/** The widgets as stored, through the owner's session (read here: the page's policy would
 * report the style attributes if the page parsed them). */
async function stored() {
  const row = await page.evaluate(async (id) => (await fetch(`/dashboard/getcontent.json?id=${id}`)).json(), dashId);
  return [...row.content.matchAll(/<div ([^>]*)>/g)].map(([, attrs]) => {
    const a = Object.fromEntries([...attrs.matchAll(/([\w-]+)="([^"]*)"/g)].map(([, k, v]) => [k, v]));
    return { id: a.id, cls: a.class, style: a.style, feedid: a.feedid, decimals: a.decimals };
  });
}
const styleOf = (s) => Object.fromEntries(s.split(';').map((p) => p.split(':').map((x) => x.trim())).filter((p) => p.length === 2));

try {
  step('the owner logs in and opens the dashboard from the list');
  await page.goto(`${base}/app/login?next=${encodeURIComponent('/app/dashboards')}`);
  await page.getByLabel('Username').fill(userName);
  await page.getByLabel('Password').fill(userPass);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForSelector('main[data-ready="dashboards"] #dashboards');
  await page.getByRole('link', { name: 'House' }).click();
  await page.waitForSelector('main[data-ready="dashboards"] #dashboard');

  step('the widgets show the seeded values');
  check((await text(page, 1)) === 'My house', `heading: ${await text(page, 1)}`);
  check((await widget(page, 2).locator('b').innerText()) === 'now', 'the paragraph keeps its bold');
  check((await widget(page, 2).locator('img').count()) === 0, 'the paragraph drops its image');
  check((await text(page, 3)) === '1234 W', `feed value: ${await text(page, 3)}`);
  check((await text(page, 4)) === '21.5 °C', `feed by tag:name: ${await text(page, 4)}`);
  check((await widget(page, 5).locator('svg').getAttribute('aria-label')) === '1234 W', 'dial');
  check((await widget(page, 6).getAttribute('data-state')) === 'off', 'the LED of a 0 feed is off');
  await page.waitForFunction(() => Number(document.querySelector('#dashboard .widget[data-id="8"]')?.dataset.points) > 10);
  check((await text(page, 9)).includes('does not draw'), 'an unknown widget says so');
  await shot('dashboards-01-view');

  step('the button switches its feed on, and the LED follows');
  await widget(page, 7).getByRole('button').click();
  await page.waitForSelector('#dashboard .widget[data-id="7"] button[aria-pressed="true"]');
  await page.reload();
  await page.waitForSelector('main[data-ready="dashboards"] #dashboard');
  check((await widget(page, 6).getAttribute('data-state')) === 'on', 'the LED is on after the button');

  step('the editor: add a feed value, drag and resize it with the mouse');
  await page.getByRole('link', { name: 'Edit' }).click();
  await page.waitForSelector('#dashboard.editing');
  await page.getByLabel('Widget', { exact: true }).selectOption('feedvalue');
  await page.getByRole('button', { name: 'Add widget' }).click();
  const added = page.locator('#dashboard .widget.selected');
  const newId = await added.getAttribute('data-id');
  check(newId === '10', `the new widget is number ${newId}`);
  await page.getByLabel('Feed', { exact: true }).selectOption(powerFeed);
  await page.getByLabel('Decimals').fill('2');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => document.querySelector('#dashboard .widget[data-id="10"]')?.textContent.includes('1234.00'));
  const before = await page.evaluate(() => {
    const s = document.querySelector('#dashboard .widget[data-id="10"]').style;
    return { left: parseFloat(s.left), top: parseFloat(s.top), width: parseFloat(s.width), height: parseFloat(s.height) };
  });
  await added.scrollIntoViewIfNeeded();
  let box = await added.boundingBox();
  await page.mouse.move(box.x + 20, box.y + 15);
  await page.mouse.down();
  await page.mouse.move(box.x + 50, box.y + 30, { steps: 4 });
  await page.mouse.move(box.x + 85, box.y + 50, { steps: 4 });
  await page.mouse.up();
  await added.scrollIntoViewIfNeeded();
  box = await added.boundingBox();
  await page.mouse.move(box.x + box.width - 5, box.y + box.height - 5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width + 40, box.y + box.height + 20, { steps: 5 });
  await page.mouse.up();

  step('and move the LED with a finger');
  const led = widget(page, 6);
  const ledBefore = await page.evaluate(() => parseFloat(document.querySelector('#dashboard .widget[data-id="6"]').style.left));
  await led.scrollIntoViewIfNeeded();
  const lb = await led.boundingBox();
  const cdp = await context.newCDPSession(page);
  const touch = (type, x, y) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: type === 'touchEnd' ? [] : [{ x, y }] });
  const [tx, ty] = [lb.x + lb.width / 2, lb.y + lb.height / 2];
  await touch('touchStart', tx, ty);
  for (let i = 1; i <= 5; i += 1) await touch('touchMove', tx + 8 * i, ty);
  await touch('touchEnd', tx + 40, ty);

  step('save, and the stored content holds the positions dragged to');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForSelector('#dashboard[data-saved="1"]');
  await shot('dashboards-02-editor');
  const widgets = await stored();
  const mine = widgets.find((w) => w.id === newId);
  check(mine && mine.cls === 'feedvalue' && mine.feedid === powerFeed && mine.decimals === '2', `stored: ${JSON.stringify(mine)}`);
  const s = styleOf(mine.style);
  // Grid 20: +65 → +60, +35 → +40; the corner +45 → +40 wide, +25 → +20 high.
  const want = { left: before.left + 60, top: before.top + 40, width: before.width + 40, height: before.height + 20 };
  for (const k of ['left', 'top', 'width', 'height']) check(s[k] === `${want[k]}px`, `${k}: ${s[k]} (wanted ${want[k]}px, from ${JSON.stringify(before)})`);
  const storedLed = styleOf(widgets.find((w) => w.id === '6').style);
  check(storedLed.left === `${ledBefore + 40}px`, `the LED moved by touch to ${storedLed.left} from ${ledBefore}`);
  check(widgets.length === 10, `${widgets.length} widgets stored`);

  step('a share link shows the dashboard on a phone with no session');
  await page.getByRole('link', { name: 'Done' }).click();
  await page.waitForSelector('main[data-ready="dashboards"] #dashboard:not(.editing)');
  await page.getByRole('button', { name: 'Make a share link' }).click();
  const url = (await page.locator('#share-url').innerText()).trim();
  const anon = await browser.newContext({ viewport: { width: 360, height: 740 }, timezoneId: 'UTC', hasTouch: true, isMobile: true });
  const phone = await anon.newPage();
  phone.setDefaultTimeout(20000);
  watch(phone, 'visitor');
  await phone.goto(url);
  await phone.waitForSelector('main[data-ready="dashboards"] #dashboard');
  check((await text(phone, 3)) === '1234 W', 'the visitor sees the power');
  check((await text(phone, 10)) === '1234.00', 'and the widget added in the editor');
  check(await widget(phone, 7).getByRole('button').isDisabled(), 'the visitor cannot switch');
  check((await phone.getByRole('link', { name: 'Edit' }).count()) === 0, 'nor edit');
  const width = await phone.evaluate(() => document.querySelector('#dashboard').getBoundingClientRect().right);
  check(width <= 362, `the dashboard fits the phone: right edge at ${width}px`);
  await shot('dashboards-03-shared-phone', phone);
  const plain = await phone.evaluate(async (id) => (await fetch(`/dashboard/view.json?id=${id}`)).text(), dashId);
  check(plain === 'false', `without the link the dashboard is not there: ${plain}`);

  check(problems.length === 0, problems.join('\n'));
  console.log(`RESULT ${JSON.stringify({ dashboards: 'ok' })}`);
} catch (e) {
  console.error(e);
  if (problems.length) console.error(problems.join('\n'));
  try { await shot('dashboards-failure'); } catch { /* the page may be gone */ }
  process.exitCode = 1;
} finally {
  await browser.close();
}
