// Feeds: grouped by tag, with size, last value and age (live), and create, edit, delete,
// clear and CSV download.

import { h, clear, field, toast, ago, ageClass, fmtValue, fmtBytes, confirmAction } from '../dom.js';
import { get, live, ApiError } from '../api.js';
import {
  ENGINE_NAMES, ENGINE_SHORT, CREATABLE_ENGINES, FIXED_INTERVAL_ENGINES, INTERVALS, DEFAULT_INTERVAL,
  fmtInterval,
} from '../feedmeta.js';

/** 'YYYY-MM-DDTHH:MM' in local time, for datetime-local inputs. */
function localInput(t) {
  const d = new Date(t * 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function dialog(title, body, onSubmit, submitText = 'Save') {
  const message = h('p.error', { role: 'alert' });
  const dlg = h('dialog', { 'aria-label': title });
  const form = h('form', {
    method: 'dialog',
    onsubmit: async (e) => {
      e.preventDefault();
      message.textContent = '';
      try {
        if ((await onSubmit()) !== false) dlg.close();
      } catch (err) {
        message.textContent = err.message;
      }
    },
  }, h('h2', title), body, message,
  h('div.toolbar', h('button.primary', { type: 'submit' }, submitText),
    h('button', { type: 'button', onclick: () => dlg.close() }, 'Cancel')));
  dlg.append(form);
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

function editDialog(feed, reload) {
  const name = h('input', { value: feed.name, required: true });
  const tag = h('input', { value: feed.tag });
  const unit = h('input', { value: feed.unit || '', maxlength: 10 });
  const pub = h('input', { type: 'checkbox', checked: String(feed.public) === '1' });
  dialog(`Edit feed ${feed.id}`, [
    field('Name', name), field('Tag', tag), field('Unit', unit),
    h('div.field.inline', pub, h('label', { for: pub.id = `pub-${feed.id}` }, 'Public (readable without a key)')),
  ], async () => {
    await get('feed/set.json', {
      id: feed.id,
      fields: { name: name.value, tag: tag.value, unit: unit.value, public: pub.checked ? 1 : 0 },
    });
    toast('Feed saved');
    await reload();
  });
}

function csvDialog(feed) {
  const end = Number(feed.end_time || feed.time) || Math.floor(Date.now() / 1000);
  const start = Math.max(Number(feed.start_time) || 0, end - 86400);
  const from = h('input', { type: 'datetime-local', value: localInput(start), required: true });
  const to = h('input', { type: 'datetime-local', value: localInput(end), required: true });
  const choices = [...new Set([...INTERVALS, Number(feed.interval) || 60])].sort((a, b) => a - b);
  const interval = h('select', choices.map((s) => h('option', { value: s }, fmtInterval(s))));
  interval.value = String(Math.max(Number(feed.interval) || 60, 60));
  const average = h('input', { type: 'checkbox', checked: true, id: `avg-${feed.id}` });
  const estimate = h('p.muted');
  const update = () => {
    const n = Math.round((new Date(to.value) - new Date(from.value)) / 1000 / Number(interval.value));
    estimate.textContent = Number.isFinite(n) ? `About ${Math.max(0, n)} lines (limit 20000)` : '';
  };
  for (const el of [from, to, interval]) el.addEventListener('change', update);
  update();
  dialog(`CSV of ${feed.name}`, [
    field('From', from), field('To', to), field('Interval', interval),
    h('div.field.inline', average, h('label', { for: average.id }, 'Average over each interval')),
    estimate,
  ], async () => {
    const s = Math.floor(new Date(from.value).getTime() / 1000);
    const e = Math.floor(new Date(to.value).getTime() / 1000);
    if (!(e > s)) throw new Error('"To" must be after "From"');
    const q = new URLSearchParams({
      id: feed.id, start: s, end: e, interval: interval.value, average: average.checked ? 1 : 0,
      timeformat: 'unix',
    });
    // Fetched first, so an error (too many lines, a bad range) is shown here instead of being
    // saved as the file.
    const res = await fetch(`/feed/csvexport.json?${q}`, { credentials: 'same-origin' });
    const text = await res.text();
    if (!res.ok || !/octet-stream|csv/.test(res.headers.get('content-type') || '')) {
      let message = text;
      try { message = JSON.parse(text).message || text; } catch { /* plain text */ }
      throw new ApiError(message || `HTTP ${res.status}`, res.status);
    }
    const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    const a = h('a', { href: url, download: `${feed.name || feed.id}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }, 'Download');
}

function createForm(reload) {
  const name = h('input', { required: true });
  const tag = h('input');
  const engine = h('select', CREATABLE_ENGINES.map((k) => h('option', { value: k }, ENGINE_NAMES[k])));
  const interval = h('select', INTERVALS.map((s) => h('option', { value: s }, fmtInterval(s))));
  interval.value = String(DEFAULT_INTERVAL);
  const unit = h('input', { maxlength: 10, size: 5 });
  const intervalField = field('Interval', interval);
  const fixed = () => FIXED_INTERVAL_ENGINES.has(Number(engine.value));
  engine.addEventListener('change', () => { intervalField.hidden = !fixed(); });
  const message = h('p.error', { role: 'alert' });
  return h('details.card', h('summary', 'New feed'), h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      message.textContent = '';
      try {
        const r = await get('feed/create.json', {
          name: name.value, tag: tag.value, engine: engine.value, unit: unit.value,
          options: fixed() ? { interval: Number(interval.value) } : {},
        });
        toast(`Feed ${r.feedid} created`);
        name.value = '';
        await reload();
      } catch (err) {
        message.textContent = err.message;
      }
    },
  }, h('div.row', field('Name', name), field('Tag', tag), field('Engine', engine), intervalField,
    field('Unit', unit), h('button.primary', { type: 'submit' }, 'Create')), message));
}

export async function render(main) {
  const list = h('div');
  let feeds = [];
  const rows = new Map();

  const draw = () => {
    rows.clear();
    if (!feeds.length) {
      clear(list, h('p.muted', 'No feeds yet. Create one here, or from an input\'s process list ("Log to feed").'));
      return;
    }
    const groups = new Map();
    for (const f of feeds) {
      const tag = f.tag || '(no tag)';
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(f);
    }
    const sections = [...groups.keys()].sort().map((tag) => {
      const items = groups.get(tag);
      const size = items.reduce((s, f) => s + (Number(f.size) || 0), 0);
      return h('section.group', h('h2', tag, h('span.muted', fmtBytes(size))),
        h('div.table-wrap', h('table', h('thead', h('tr',
          h('th', 'Name'), h('th.hide-narrow', 'Engine'), h('th.hide-narrow', 'Interval'),
          h('th.hide-narrow.num', 'Size'), h('th.num', 'Value'), h('th', 'Updated'), h('th', 'Public'), h('th', 'Actions'))),
        h('tbody', items.map((f) => row(f))))));
    });
    clear(list, sections);
  };

  const row = (f) => {
    const value = h('td.num.value', fmtValue(f.value), f.unit ? ` ${f.unit}` : '');
    const age = h('td.age', { class: `age ${ageClass(f.time)}`, dataset: { time: f.time || 0 } }, ago(f.time));
    const graphLink = h('a', { href: `/app/graph?feeds=${f.id}` }, f.name);
    const tr = h('tr', { dataset: { feed: f.id } },
      h('td', graphLink, h('div.muted.small', `id ${f.id}`)),
      h('td.hide-narrow', ENGINE_SHORT[f.engine] || `engine ${f.engine}`),
      h('td.hide-narrow', fmtInterval(Number(f.interval))),
      h('td.hide-narrow.num', fmtBytes(f.size)),
      value, age,
      h('td', String(f.public) === '1' ? 'yes' : 'no'),
      h('td', h('div.toolbar',
        h('button.small', { type: 'button', 'aria-label': `Edit ${f.name}`, onclick: () => editDialog(f, reload) }, 'Edit'),
        h('button.small', { type: 'button', 'aria-label': `CSV of ${f.name}`, onclick: () => csvDialog(f) }, 'CSV'),
        h('button.small', {
          type: 'button', 'aria-label': `Clear ${f.name}`,
          onclick: async () => {
            if (!(await confirmAction(`Delete all data of "${f.name}"? The feed stays.`))) return;
            try { await get('feed/clear.json', { id: f.id }); toast('Feed cleared'); await reload(); } catch (e) { toast(e.message, 'error'); }
          },
        }, 'Clear'),
        h('button.small.danger', {
          type: 'button', 'aria-label': `Delete ${f.name}`,
          onclick: async () => {
            if (!(await confirmAction(`Delete feed "${f.name}" and all its data?`))) return;
            try { await get('feed/delete.json', { id: f.id }); toast('Feed deleted'); await reload(); } catch (e) { toast(e.message, 'error'); }
          },
        }, 'Delete'))));
    rows.set(String(f.id), { f, value, age });
    return tr;
  };

  async function reload() {
    feeds = await get('feed/list.json', { meta: 1 });
    draw();
  }
  let reloadTimer;
  const reloadSoon = () => {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => reload().catch((e) => toast(e.message, 'error')), 250);
  };

  main.append(h('div.toolbar', h('h1', 'Feeds')), createForm(reload), list);
  // The stored sizes are refreshed once per visit (it reads every feed file's length).
  try { await get('feed/updatesize.json'); } catch { /* sizes stay as they were */ }
  await reload();

  const stop = live((kind, d) => {
    if (kind === 'feed') {
      const r = rows.get(String(d.id));
      // A feed made elsewhere (a process list, another tab) since the list was read.
      if (!r) { reloadSoon(); return; }
      r.f.value = d.value;
      r.f.time = d.time;
      clear(r.value, fmtValue(d.value), r.f.unit ? ` ${r.f.unit}` : '');
      r.age.dataset.time = d.time;
    } else if (kind === 'resync' || kind === 'open') {
      // Behind, or (re)connected: values sent before the stream opened came with no event.
      reloadSoon();
    }
  });
  const tick = setInterval(() => {
    for (const { age } of rows.values()) {
      const t = Number(age.dataset.time);
      age.textContent = ago(t);
      age.className = `age ${ageClass(t)}`;
    }
  }, 1000);
  return () => { stop(); clearInterval(tick); clearTimeout(reloadTimer); };
}
