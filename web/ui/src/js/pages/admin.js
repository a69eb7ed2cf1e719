// Admin: users, disk use, version, backups and the shard workers (admin/status.json).

import { h, clear, field, fmtBytes, ago, toast } from '../dom.js';
import { get, post } from '../api.js';
import { pounds } from '../money.js';

/** A small form posting to `path`; `fields` are [name, label, attrs]. */
function adminForm(title, path, fields, done) {
  const inputs = fields.map(([name, label, attrs]) => [name, label, h('input', { name, required: true, ...attrs })]);
  return h('form.card', {
    dataset: { action: path },
    onsubmit: async (e) => {
      e.preventDefault();
      const params = Object.fromEntries(inputs.map(([name, , input]) => [name, input.value.trim()]));
      try {
        const r = await post(path, params);
        toast(r.new === false ? 'Already recorded: nothing changed' : `${title}: done`);
        for (const [, , input] of inputs) input.value = '';
        await done();
      } catch (err) { toast(err.message, 'error'); }
    },
  }, h('h3', title), inputs.map(([, label, input]) => field(label, input)), h('button.primary', { type: 'submit' }, title));
}

/** Balances, runway and standing of every account, and the operator's actions. */
async function billingSection() {
  const section = h('section.card', { id: 'billing' });
  const ledgerBox = h('div', { id: 'ledger' });
  async function showLedger(a) {
    try {
      const rows = await get('billing/userledger.json', { userid: a.userid });
      // A correction is a reversing transaction, never an edit; each is made once.
      const reversed = new Set(rows.filter((t) => t.kind === 'reversal').map((t) => t.key.replace(/^reverse:/, '')));
      const reverse = (t) => (t.kind === 'reversal' || reversed.has(t.key) ? '' : h('button.small', {
        type: 'button',
        'aria-label': `Reverse ${t.key}`,
        onclick: async () => {
          if (!window.confirm(`Reverse ${t.key}? Its opposite is posted; the original stays in the ledger.`)) return;
          try {
            await post('billing/reverse.json', { key: t.key });
            toast(`Reversed ${t.key}`);
            await load();
            await showLedger(a);
          } catch (e) { toast(e.message, 'error'); }
        },
      }, 'Reverse'));
      clear(ledgerBox, h('h3', `Ledger of ${a.username}`), h('div.table-wrap', h('table',
        h('thead', h('tr', h('th', 'Date'), h('th', 'Kind'), h('th', 'What'), h('th.num', 'Amount'), h('th', 'Key'), h('th', ''))),
        h('tbody', rows.map((t) => h('tr', { dataset: { key: t.key } }, h('td', t.date), h('td', t.kind), h('td', t.memo),
          h('td.num', pounds(t.amount_pence)), h('td', h('code', t.key)), h('td', reverse(t))))))));
    } catch (e) { toast(e.message, 'error'); }
  }
  let enabled = true;
  async function load() {
    let accounts;
    try {
      accounts = await get('billing/accounts.json');
    } catch (e) {
      if (e.status === 404) { enabled = false; return; }
      throw e;
    }
    clear(section, h('h2', 'Billing'),
      h('div.toolbar', h('button.small', {
        type: 'button',
        onclick: async () => {
          try {
            const run = await post('billing/accrue.json');
            toast(`Charged ${run.posted} day(s), ${pounds(run.pence)}`);
            await load();
          } catch (e) { toast(e.message, 'error'); }
        },
      }, 'Charge finished days now')),
      h('div.table-wrap', h('table', { id: 'accounts' },
        h('thead', h('tr', h('th', 'Id'), h('th', 'Username'), h('th', 'Plan'), h('th.num', 'Feeds'),
          h('th.num', 'Balance'), h('th.num', 'Runway'), h('th', 'Standing'), h('th.num', 'Refused'), h('th', ''))),
        h('tbody', accounts.map((a) => h('tr', { dataset: { user: a.username } }, h('td', a.userid), h('td', a.username), h('td', a.plan),
          h('td.num', a.feeds), h('td.num.balance', pounds(a.balance_pence)),
          h('td.num', a.runway_days ?? '—'), h('td', a.standing.state), h('td.num', a.refusals),
          h('td', h('button.small', { type: 'button', 'aria-label': `Ledger of ${a.username}`, onclick: () => showLedger(a) }, 'Ledger'))))))),
      ledgerBox,
      h('div.grid-forms',
        adminForm('Top up', 'billing/topup.json', [['userid', 'User id', { inputmode: 'numeric' }],
          ['pence', 'Pence', { inputmode: 'numeric' }], ['reference', 'Payment reference', {}]], load),
        adminForm('Refund', 'billing/refund.json', [['userid', 'User id', { inputmode: 'numeric' }],
          ['pence', 'Pence', { inputmode: 'numeric' }], ['reference', 'Refund reference', {}]], load),
        adminForm('New voucher', 'billing/voucher.json', [['code', 'Code', {}],
          ['pence', 'Pence', { inputmode: 'numeric' }], ['memo', 'What it is for', { required: false }]], load)));
  }
  await load();
  return enabled ? section : null;
}

/** Scheduled backups (`[backup]`): the last one, the last failure and the next run. */
function backupSection(b) {
  if (!b) return null;
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : '—');
  return h('section.card', { id: 'backups' }, h('h2', 'Backups'), h('dl.facts',
    h('dt', 'Directory'), h('dd', h('code', b.dir)),
    h('dt', 'Every'), h('dd', `${Math.round(b.interval_s / 3600 * 10) / 10} h, keeping ${b.keep}`),
    h('dt', 'Last finished'), h('dd', b.last ? `${when(b.last.finished)} · ${fmtBytes(b.last.bytes)} in ${b.last.files} files` : 'none yet'),
    h('dt', 'Last failure'), h('dd', b.last_error ? `${when(b.last_error.time)}: ${b.last_error.message}` : 'none'),
    h('dt', 'Next'), h('dd', when(b.next))));
}

export async function render(main) {
  const body = h('div');
  main.append(h('div.toolbar', h('h1', 'Admin'),
    h('button.small', { type: 'button', onclick: () => load().catch((e) => toast(e.message, 'error')) }, 'Refresh')), body);
  async function load() {
    const s = await get('admin/status.json');
    const parts = Object.entries(s.disk?.parts || {});
    const billing = await billingSection();
    clear(body, billing,
      h('section.card', h('h2', 'Server'), h('dl.facts',
        h('dt', 'ynni version'), h('dd', s.version),
        h('dt', 'emoncms API level'), h('dd', s.emoncms_api),
        h('dt', 'Data directory'), h('dd', h('code', s.disk?.data_dir || '')),
        h('dt', 'Disk used'), h('dd', fmtBytes(s.disk?.total_bytes)))),
      backupSection(s.backup),
      h('section.card', h('h2', 'Disk use'), h('div.table-wrap', h('table',
        h('thead', h('tr', h('th', 'Part'), h('th.num', 'Size'))),
        h('tbody', parts.map(([k, v]) => h('tr', h('td', k), h('td.num', fmtBytes(v)))))))),
      h('section.card', h('h2', 'Shard workers'), h('div.table-wrap', h('table',
        h('thead', h('tr', h('th', 'Shard'), h('th', 'State'), h('th.num', 'Users loaded'), h('th.num', 'Submissions'), h('th.num', 'Replayed at start'))),
        h('tbody', s.shards.map((w) => h('tr', h('td', w.shard), h('td', w.state),
          h('td.num', w.users_loaded ?? ''), h('td.num', w.submissions ?? ''), h('td.num', w.replayed_at_start ?? ''))))))),
      h('section.card', h('h2', `Users (${s.users.length})`), h('div.table-wrap', h('table',
        h('thead', h('tr', h('th', 'Id'), h('th', 'Username'), h('th', 'Email'), h('th', 'Admin'), h('th.num', 'Inputs'), h('th.num', 'Feeds'), h('th', 'Last login'))),
        h('tbody', s.users.map((u) => h('tr', h('td', u.id), h('td', u.username), h('td', u.email),
          h('td', u.admin ? 'yes' : ''), h('td.num', u.inputs), h('td.num', u.feeds), h('td', ago(u.lastlogin)))))))));
  }
  await load();
}
