// A hosted service's billing in Debian's chromium, against a running server with [billing]:
//   node tests/browser/billing.mjs <base-url> <screenshot-dir>
// The operator tops up a customer, charges the finished days and issues a voucher from the
// admin page; the customer sees the grace banner, their balance and statement (the numbers
// the test expects, given in YNNI_EXPECT_*), downloads the statement as CSV, redeems the
// voucher, and the page prints without navigation. tests/e2e/browser.rs starts the server.

import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [base, shots = 'browser-screenshots'] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const [adminName, adminPass] = env('YNNI_ADMIN_LOGIN').split(':');
const [userName, userPass] = env('YNNI_USER_LOGIN').split(':');
const userId = env('YNNI_USER_ID');
const afterAccrual = Number(env('YNNI_EXPECT_AFTER_ACCRUAL'));
const afterVoucher = Number(env('YNNI_EXPECT_AFTER_VOUCHER'));
const problems = [];
const step = (name) => console.log(`-- ${name}`);
function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}
function pounds(p) {
  const sign = p < 0 ? '−' : '';
  const a = Math.abs(p);
  return `${sign}£${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(20000);
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() === 'error') problems.push(`console ${m.type()}: ${m.text()}`);
});
page.on('dialog', (d) => d.accept());
page.on('response', async (r) => {
  if (r.status() >= 400) problems.push(`${r.status()} ${r.request().method()} ${r.url()}: ${await r.text().catch(() => '')}`);
});
const shot = async (name, p = page) => p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

async function login(name, password) {
  await page.goto(`${base}/app/login`);
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForSelector('main[data-ready]:not([data-ready="login"])');
}

async function adminForm(action, values, button) {
  const form = page.locator(`form[data-action="${action}"]`);
  for (const [label, value] of Object.entries(values)) await form.getByLabel(label).fill(value);
  await form.getByRole('button', { name: button }).click();
}

const aliceBalance = () => page.locator(`#accounts tr[data-user="${userName}"] .balance`);

try {
  step('the operator tops the customer up');
  await login(adminName, adminPass);
  await page.goto(`${base}/app/admin`);
  await page.waitForSelector('main[data-ready="admin"]');
  await page.waitForSelector('#billing');
  await adminForm('billing/topup.json', { 'User id': userId, Pence: '100', 'Payment reference': 'pay-ui-1' }, 'Top up');
  await page.waitForFunction(([sel, want]) => document.querySelector(sel)?.textContent === want,
    [`#accounts tr[data-user="${userName}"] .balance`, pounds(100)]);

  step('charges the finished days and issues a voucher');
  await page.getByRole('button', { name: 'Charge finished days now' }).click();
  await page.waitForFunction(([sel, want]) => document.querySelector(sel)?.textContent === want,
    [`#accounts tr[data-user="${userName}"] .balance`, pounds(afterAccrual)]);
  check(await aliceBalance().textContent() === pounds(afterAccrual), 'the admin page shows the charged balance');
  await page.getByRole('button', { name: `Ledger of ${userName}` }).click();
  await page.locator('#ledger table').waitFor();
  check((await page.locator('#ledger').innerText()).includes('topup:pay-ui-1'), 'the ledger lists the top-up by its key');

  await adminForm('billing/voucher.json', { Code: 'HW-UI-00001', Pence: '500', 'What it is for': 'emonPi' }, 'New voucher');
  await page.getByText('New voucher: done').waitFor();
  await shot('billing-01-admin');
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(/\/app\/login/);

  step('the customer sees the grace banner and the balance');
  await login(userName, userPass);
  const banner = page.locator('#banner');
  await banner.waitFor();
  check(/used up/.test(await banner.textContent()), `grace banner: ${await banner.textContent()}`);
  await page.getByRole('link', { name: 'Billing', exact: true }).first().click();
  await page.waitForSelector('main[data-ready="billing"]');
  const bal = page.locator('#balance .balance');
  check(Number(await bal.getAttribute('data-pence')) === afterAccrual, `balance ${await bal.getAttribute('data-pence')}`);
  check(await page.locator('#balance .standing').getAttribute('data-state') === 'grace', 'standing: grace');
  await page.locator('#statement').waitFor();
  check(Number(await page.locator('#statement').getAttribute('data-closing')) === afterAccrual,
    'the statement closes at the balance');
  await shot('billing-02-customer');

  step('downloads the statement as CSV');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download CSV' }).click(),
  ]);
  const csv = readFileSync(await download.path(), 'utf8');
  check(csv.includes(`closing balance,${(afterAccrual / 100).toFixed(2)}`), `CSV closing balance:\n${csv}`);

  step('redeems the voucher');
  await page.getByLabel('Code').fill('HW-UI-00001');
  await page.getByRole('button', { name: 'Redeem' }).click();
  await page.waitForFunction((want) => document.querySelector('#balance .balance')?.dataset.pence === String(want), afterVoucher);
  await page.reload();
  await page.waitForSelector('main[data-ready="billing"]');
  const after = await page.locator('#banner').textContent().catch(() => '');
  check(!/used up/.test(after), `no grace banner after the voucher: ${after}`);

  step('prints without navigation');
  // The statement is fetched after the page is ready (as on the first visit above).
  await page.locator('#statement').waitFor();
  await page.emulateMedia({ media: 'print' });
  check(!(await page.locator('header.top').isVisible()), 'the header is not printed');
  check(await page.locator('#statement').isVisible(), 'the statement is printed');
  await shot('billing-03-print');
  await page.emulateMedia({ media: 'screen' });

  step('a phone shows it without sideways scrolling');
  const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, storageState: await context.storageState() });
  const p2 = await phone.newPage();
  p2.on('pageerror', (e) => problems.push(`page error (phone): ${e.message}`));
  await p2.goto(`${base}/app/billing`);
  await p2.waitForSelector('main[data-ready="billing"]');
  const width = await p2.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 362, `/app/billing is ${width}px wide on a 360px screen`);
  await shot('billing-04-phone', p2);
  await phone.close();

  step('reverses a top-up recorded by mistake');
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(/\/app\/login/);
  await login(adminName, adminPass);
  await page.goto(`${base}/app/admin`);
  await page.waitForSelector('#billing');
  await adminForm('billing/topup.json', { 'User id': userId, Pence: '50', 'Payment reference': 'pay-ui-2' }, 'Top up');
  await page.waitForFunction(([sel, want]) => document.querySelector(sel)?.textContent === want,
    [`#accounts tr[data-user="${userName}"] .balance`, pounds(afterVoucher + 50)]);
  await page.getByRole('button', { name: `Ledger of ${userName}` }).click();
  await page.getByRole('button', { name: 'Reverse topup:pay-ui-2' }).click();
  await page.waitForFunction(([sel, want]) => document.querySelector(sel)?.textContent === want,
    [`#accounts tr[data-user="${userName}"] .balance`, pounds(afterVoucher)]);
  await page.locator('#ledger tr[data-key="reverse:topup:pay-ui-2"]').waitFor();
  check(await page.getByRole('button', { name: 'Reverse topup:pay-ui-2' }).count() === 0,
    'a reversed transaction offers no second reversal');
  check(await page.getByRole('button', { name: 'Reverse reverse:topup:pay-ui-2' }).count() === 0,
    'a reversal is not reversed');

  check(problems.length === 0, `no page errors:\n${problems.join('\n')}`);
  console.log('RESULT {"billing":"ok"}');
  await browser.close();
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error(`page problems:\n${problems.join('\n')}`);
  try { await shot('billing-failure'); } catch { /* the page may be gone */ }
  await browser.close();
  process.exit(1);
}
