// Admin: users, disk use, version and the shard workers (admin/status.json).

import { h, clear, fmtBytes, ago, toast } from '../dom.js';
import { get } from '../api.js';

export async function render(main) {
  const body = h('div');
  main.append(h('div.toolbar', h('h1', 'Admin'),
    h('button.small', { type: 'button', onclick: () => load().catch((e) => toast(e.message, 'error')) }, 'Refresh')), body);
  async function load() {
    const s = await get('admin/status.json');
    const parts = Object.entries(s.disk?.parts || {});
    clear(body,
      h('section.card', h('h2', 'Server'), h('dl.facts',
        h('dt', 'ynni version'), h('dd', s.version),
        h('dt', 'emoncms API level'), h('dd', s.emoncms_api),
        h('dt', 'Data directory'), h('dd', h('code', s.disk?.data_dir || '')),
        h('dt', 'Disk used'), h('dd', fmtBytes(s.disk?.total_bytes)))),
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
