// Billing (a hosted service): balance and runway, what each feed costs, usage per day,
// voucher codes, and monthly statements to print or download (billing/*.json, usage/*).

import { h, clear, field, toast, fmtBytes } from '../dom.js';
import { get, post } from '../api.js';
import { pounds } from '../money.js';

const STATE_TEXT = {
  good: 'In credit',
  low: 'Running low',
  grace: 'Used up: in the grace period',
  suspended: 'Used up: new data refused',
};

function balanceCard(a) {
  const runway = a.runway_days === null || a.runway_days === undefined ? 'no charges' : `${a.runway_days} days`;
  return h('section.card', { id: 'balance' }, h('h2', 'Balance'), h('dl.facts',
    h('dt', 'Balance'), h('dd.balance', { dataset: { pence: a.balance_pence } }, pounds(a.balance_pence)),
    h('dt', 'Standing'), h('dd.standing', { dataset: { state: a.standing.state } }, STATE_TEXT[a.standing.state] || a.standing.state),
    h('dt', 'Lasts'), h('dd', runway),
    h('dt', 'Plan'), h('dd', a.plan),
    h('dt', 'Feeds'), h('dd', a.feeds),
    h('dt', 'Cost a day'), h('dd', `${(a.daily_centipence / 100).toFixed(2)}p`)));
}

function feedsCard(a, feeds) {
  return h('section.card', h('h2', 'What each feed costs'), h('div.table-wrap', h('table',
    h('thead', h('tr', h('th', 'Feed'), h('th', 'Tag'), h('th.num', 'Stored'), h('th.num', 'A year'), h('th.num', 'A day'))),
    h('tbody', feeds.map((f) => h('tr', h('td', f.name), h('td', f.tag), h('td.num', fmtBytes(f.size)),
      h('td.num', pounds(a.feed_year_pence)), h('td.num', `${(a.feed_year_pence / 365).toFixed(2)}p`)))))));
}

function usageCard(u) {
  return h('section.card', h('h2', 'Usage, last 31 days'), h('div.table-wrap', h('table', { id: 'usage' },
    h('thead', h('tr', h('th', 'Day'), h('th.num', 'Values (HTTP)'), h('th.num', 'Values (MQTT)'),
      h('th.num', 'Points stored'), h('th.num', 'Refused'))),
    h('tbody', u.days.map((d) => h('tr', h('td', d.day), h('td.num', d.http_values), h('td.num', d.mqtt_values),
      h('td.num', d.points), h('td.num', d.refusals)))))));
}

function voucherCard(reload) {
  const code = h('input', { name: 'code', autocomplete: 'off', required: true });
  return h('form.card', {
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await post('billing/redeem.json', { code: code.value.trim() });
        toast('Voucher added to your balance');
        code.value = '';
        await reload();
      } catch (err) { toast(err.message, 'error'); }
    },
  }, h('h2', 'Voucher code'), field('Code', code, 'From a hardware purchase or a promotion'),
  h('button.primary', { type: 'submit' }, 'Redeem'));
}

/** The last `n` months, newest first, as YYYY-MM. */
function months(n) {
  const out = [];
  const d = new Date();
  d.setUTCDate(1);
  for (let i = 0; i < n; i++) {
    out.push(`${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`);
    d.setUTCMonth(d.getUTCMonth() - 1);
  }
  return out;
}

function statementView(s) {
  return h('div.statement', { id: 'statement', dataset: { closing: s.closing_pence, month: s.month } },
    h('h3', s.number ? `Statement ${s.number}, ${s.month}` : `${s.month} so far (not final)`),
    h('p', `${s.username} · opening balance ${pounds(s.opening_pence)} · charges ${pounds(s.charges_pence)} · credits ${pounds(s.credits_pence)} · closing balance `,
      h('strong.closing', pounds(s.closing_pence))),
    h('div.table-wrap', h('table',
      h('thead', h('tr', h('th', 'Date'), h('th', 'What'), h('th.num', 'Feeds'), h('th.num', 'Amount'), h('th.num', 'Balance'))),
      h('tbody', s.lines.map((l) => h('tr', h('td', l.date), h('td', l.description),
        h('td.num', l.kind === 'accrual' ? l.feeds : ''), h('td.num', pounds(l.amount_pence)), h('td.num', pounds(l.balance_pence))))))));
}

function statementsCard() {
  const choice = h('select', { name: 'month' }, months(12).map((m) => h('option', { value: m }, m)));
  const shown = h('div');
  const csv = h('a.button', { download: '' }, 'Download CSV');
  const json = h('a.button', { download: '' }, 'Download JSON');
  async function show() {
    try {
      const s = await get('billing/statement.json', { month: choice.value });
      clear(shown, statementView(s));
      csv.href = `/billing/statement.csv?month=${encodeURIComponent(choice.value)}`;
      json.href = `/billing/statement.json?month=${encodeURIComponent(choice.value)}`;
    } catch (e) { toast(e.message, 'error'); }
  }
  choice.addEventListener('change', show);
  show();
  return h('section.card.statements', h('h2', 'Statements'),
    h('div.toolbar.no-print', field('Month', choice), csv, json,
      h('button', { type: 'button', onclick: () => window.print() }, 'Print')),
    shown);
}

export async function render(main) {
  const body = h('div');
  main.append(h('h1', 'Billing'), body);
  async function load() {
    let account;
    try {
      account = await get('billing/account.json');
    } catch (e) {
      clear(body, h('p.error', e.message));
      return;
    }
    if (!account.enabled) {
      clear(body, h('p', 'This server does not bill its users.'));
      return;
    }
    const [feeds, usage] = await Promise.all([get('feed/list.json'), get('usage/summary.json')]);
    clear(body, h('div.no-print', balanceCard(account), voucherCard(load), feedsCard(account, feeds), usageCard(usage)),
      statementsCard());
  }
  await load();
}
