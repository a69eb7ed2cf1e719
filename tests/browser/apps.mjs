// My Electric in Debian's chromium, against a running server with seeded data (given in
// YNNI_*): the owner sees power now and yesterday's kWh and cost, makes a share link, and a
// browser with no session opens it and sees the same figures, read-only.
//   node tests/browser/apps.mjs <base-url> <screenshot-dir>

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, shots = 'browser-screenshots'] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const [userName, userPass] = process.env.YNNI_USER_LOGIN.split(':');
const yesterday = process.env.YNNI_YESTERDAY;
const yesterdayKwh = process.env.YNNI_YESTERDAY_KWH;
const yesterdayCost = process.env.YNNI_YESTERDAY_COST;
const powerNow = process.env.YNNI_POWER_NOW;
const problems = [];
// Set while the test itself asks for what the token must not read (the browser logs the 403).
let refusalExpected = false;
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
    if (refusalExpected && /status of 40[13]/.test(m.text())) return;
    if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) problems.push(`${who} console: ${m.text()}`);
  });
};
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId: 'UTC' });
const page = await context.newPage();
page.setDefaultTimeout(20000);
watch(page, 'owner');
page.on('dialog', (d) => d.accept());
const shot = async (name, p = page) => p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

async function figures(p) {
  await p.locator('#power-now').waitFor();
  const row = p.locator(`#days tr[data-date="${yesterday}"]`);
  return {
    power: await p.locator('#power-now').getAttribute('data-watts'),
    kwh: (await row.locator('td').nth(1).textContent()).trim(),
    cost: (await row.locator('td').nth(2).textContent()).trim(),
  };
}

try {
  step('the owner opens My Electric');
  await page.goto(`${base}/app/login`);
  await page.getByLabel('Username').fill(userName);
  await page.getByLabel('Password').fill(userPass);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForSelector('main[data-ready]:not([data-ready="login"])');
  await page.goto(`${base}/app/apps?name=House`);
  await page.waitForSelector('main[data-ready="apps"]');
  const own = await figures(page);
  check(own.power === powerNow, `power now ${own.power}, expected ${powerNow}`);
  check(own.kwh === yesterdayKwh, `yesterday ${own.kwh} kWh, expected ${yesterdayKwh}`);
  check(own.cost === yesterdayCost, `yesterday cost ${own.cost}, expected ${yesterdayCost}`);
  await shot('apps-01-myelectric');
  const barSum = async () => (await page.locator('#use-bars .bar').evaluateAll((els) => els.map((e) => Number(e.dataset.kwh || 0))))
    .reduce((a, b) => a + b, 0);
  const daySum = await barSum();
  for (const by of ['week', 'month']) {
    await page.getByRole('button', { name: `Per ${by}` }).click();
    await page.waitForSelector(`#use-bars[data-by="${by}"]`);
    const sum = await barSum();
    check(Math.abs(sum - daySum) < 0.01 && daySum > 20, `per ${by} the bars hold ${sum} kWh, per day ${daySum}`);
  }
  await shot('apps-01c-myelectric-months');

  step('My Electric with a time-of-use tariff prices each hour at its band');
  await page.goto(`${base}/app/apps?name=Tariff`);
  await page.waitForSelector('main[data-ready="apps"]');
  const tou = await figures(page);
  check(tou.kwh === yesterdayKwh && tou.cost === '£1.91', `time-of-use yesterday: ${JSON.stringify(tou)}`);
  check((await page.locator('#tariff-now').textContent()).includes('per kWh'), 'the price now is shown');
  await shot('apps-01b-myelectric-time-of-use');

  step('My Solar shows yesterday as the test seeded it');
  await page.goto(`${base}/app/apps?name=Solar&day=${yesterday}`);
  await page.waitForSelector('main[data-ready="apps"]');
  await page.locator('#solar-kwh').waitFor();
  const want = {
    'solar-kwh': '3.0 kWh', 'use-kwh': '2.8 kWh', 'direct-kwh': '2.0 kWh', 'export-kwh': '1.0 kWh',
    'import-kwh': '0.8 kWh', 'self-consumption': '66.7 %', 'self-sufficiency': '71.4 %',
  };
  // The last values: 800 W of use at night, no solar.
  want['use-now'] = '800 W';
  want['solar-now'] = '0 W';
  for (const [id, text] of Object.entries(want)) {
    const got = (await page.locator(`#${id}`).textContent()).trim();
    check(got === text, `${id}: ${got}, expected ${text}`);
  }
  const hist = page.locator(`.bars.stacked .bar[data-date="${yesterday}"]`);
  const parts = await hist.evaluate((e) => [e.dataset.direct, e.dataset.export, e.dataset.import].map(Number));
  check(JSON.stringify(parts) === '[3,3,9]', `yesterday's stacked bar (used here, exported, imported): ${parts}`);
  for (const [id, text] of [['hist-self-consumption', '50.0 %'], ['hist-self-sufficiency', '25.0 %']]) {
    const got = (await page.locator(`#${id}`).textContent()).trim();
    check(got === text, `${id}: ${got}, expected ${text}`);
  }
  await shot('apps-03-mysolar');

  step('My Solar with Battery and with Divert show yesterday as the test seeded it');
  const expectFacts = async (name, facts) => {
    await page.goto(`${base}/app/apps?name=${name}&day=${yesterday}`);
    await page.waitForSelector('main[data-ready="apps"]');
    await page.locator('#solar-kwh').waitFor();
    for (const [id, text] of Object.entries(facts)) {
      const got = (await page.locator(`#${id}`).textContent()).trim();
      check(got === text, `${name} ${id}: ${got}, expected ${text}`);
    }
  };
  await expectFacts('Battery', {
    'solar-kwh': '4.0 kWh', 'use-kwh': '2.6 kWh', 'charge-kwh': '2.0 kWh', 'discharge-kwh': '1.6 kWh',
    'export-kwh': '1.0 kWh', 'import-kwh': '0.0 kWh', 'self-consumption': '75.0 %', 'self-sufficiency': '100.0 %',
    'flow-solar-house': '1.0 kWh', 'flow-solar-battery': '2.0 kWh', 'flow-battery-house': '1.6 kWh', 'flow-grid-house': '0.0 kWh',
    'battery-now': '800 W', 'soc-now': '40 %', 'battery-left': '5.0 h',
  });
  await shot('apps-05-mysolar-battery');
  await expectFacts('Divert', {
    'solar-kwh': '3.0 kWh', 'use-kwh': '3.5 kWh', 'divert-kwh': '1.5 kWh', 'house-kwh': '2.0 kWh',
    'export-kwh': '0.5 kWh', 'import-kwh': '1.0 kWh', 'self-consumption': '83.3 %', 'self-sufficiency': '71.4 %',
  });
  await shot('apps-06-mysolar-divert');

  step('My Heatpump shows yesterday\'s COP and the period\'s SCOP');
  await page.goto(`${base}/app/apps?name=Heatpump`);
  await page.waitForSelector('main[data-ready="apps"]');
  await page.locator('#hp-scop').waitFor();
  const hpRow = page.locator(`#hp-days tr[data-date="${yesterday}"] td`);
  const cells = await hpRow.allTextContents();
  check(JSON.stringify(cells.slice(1)) === JSON.stringify(['6.0', '21.6', '3.60', '5.0']), `heat pump yesterday: ${cells}`);
  const scop = (await page.locator('#hp-scop').textContent()).trim();
  check(scop === '3.60', `SCOP ${scop}`);
  check((await page.locator('#hp-elec-now').textContent()).trim() === '700 W', 'electricity now');
  await shot('apps-04-myheatpump');
  await page.goto(`${base}/app/apps?name=Heatpump&day=${yesterday}`);
  await page.waitForSelector('main[data-ready="apps"]');
  const hpDay = {
    'hp-running': '1.8 h', 'hp-running-cop': '3.50', 'hp-defrosts': '1 (10 min)', 'hp-standby': '1.0 h · 0.02 kWh',
  };
  for (const [id, text] of Object.entries(hpDay)) {
    const got = (await page.locator(`#${id}`).textContent()).trim();
    check(got === text, `heat pump day ${id}: ${got}, expected ${text}`);
  }
  const states = await page.locator('.hp-strip span').evaluateAll((els) => els.map((e) => e.dataset.state));
  check(JSON.stringify(states) === JSON.stringify(['running', 'defrost', 'running', 'standby']), `the day's states: ${states}`);
  const bar = page.locator(`.hp-cop rect[data-date="${yesterday}"]`);
  check((await bar.getAttribute('data-cop')) === '3.60', 'yesterday\'s COP bar');
  check((await page.locator('.hp-cop .temp-dot').count()) > 0, 'outside temperatures drawn');
  await shot('apps-04b-myheatpump-day');

  step('every app fits a 360 px phone');
  await page.setViewportSize({ width: 360, height: 740 });
  for (const name of ['House', 'Tariff', 'Solar', 'Battery', 'Divert', 'Heatpump']) {
    await page.goto(`${base}/app/apps?name=${name}&day=${yesterday}`);
    await page.waitForSelector('main[data-ready="apps"]');
    await page.locator('main h2').first().waitFor();
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 362, `${name} is ${wide}px wide on a 360px screen`);
    await shot(`apps-phone-${name.toLowerCase()}`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(`${base}/app/apps?name=House`);
  await page.waitForSelector('main[data-ready="apps"]');
  await page.locator('#power-now').waitFor();

  step('makes a share link');
  await page.getByRole('button', { name: 'Make a share link' }).click();
  const url = (await page.locator('#share-url').textContent()).trim();
  check(url.includes('share='), url);

  step('a browser with no session opens it');
  const anon = await browser.newContext({ viewport: { width: 360, height: 740 }, timezoneId: 'UTC' });
  const p2 = await anon.newPage();
  watch(p2, 'shared');
  await p2.goto(url);
  await p2.waitForSelector('main[data-ready="apps"]');
  const shared = await figures(p2);
  check(JSON.stringify(shared) === JSON.stringify(own), `shared view ${JSON.stringify(shared)} vs ${JSON.stringify(own)}`);
  check(await p2.locator('form').count() === 0, 'no forms in the shared view');
  const width = await p2.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 362, `the shared view is ${width}px wide on a 360px screen`);
  // The token reads nothing but the app's feeds.
  const token = new URL(url).searchParams.get('share');
  refusalExpected = true;
  const status = await p2.evaluate(async (t) => (await fetch(`/feed/list.json?share=${t}`)).status, token);
  await p2.waitForTimeout(200);
  refusalExpected = false;
  check(status === 403, `feed/list with the token answered ${status}`);
  await shot('apps-02-shared-phone', p2);
  await anon.close();

  step('the owner revokes it on the account page; the link stops at once');
  await page.goto(`${base}/app/account`);
  await page.waitForSelector('main[data-ready="account"]');
  await page.getByRole('button', { name: 'Revoke share link House' }).click();
  await page.getByText('Share link revoked').waitFor();
  refusalExpected = true;
  const gone = await page.evaluate(async (t) => (await fetch(`/app/getconfig.json?share=${t}&id=1`)).status, token);
  await page.waitForTimeout(200);
  refusalExpected = false;
  check(gone === 401, `a revoked link answered ${gone}`);

  check(problems.length === 0, `no page errors:\n${problems.join('\n')}`);
  console.log('RESULT {"apps":"ok"}');
  await browser.close();
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error(`page problems:\n${problems.join('\n')}`);
  try { await shot('apps-failure'); } catch { /* the page may be gone */ }
  await browser.close();
  process.exit(1);
}
