// The inputs page: the user's inputs grouped by node, with their process lists, last values
// and ages. Values arrive live over the event stream; the list itself is only fetched again
// when something new appears (a new node or input name) or the stream asks for a resync.

import { h, clear, toast, ago, ageClass, fmtValue, confirmAction } from '../dom.js';
import { get, post, live } from '../api.js';

/** Natural order for node and input names ("node2" before "node10"). */
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

const keyOf = (nodeid, name) => `${nodeid}/${name}`;

/** "log → x → kwh" from a stored list such as "1:5,2:0.1,process__power_to_kwh:7". */
function summary(processList, shortByKey) {
  if (!processList) return '';
  return String(processList)
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((step) => {
      const key = step.split(':')[0];
      return shortByKey.get(key) || `? ${key}`;
    })
    .join(' → ');
}

export async function render(main, ctx) {
  const shortByKey = new Map(); // id_num and module__fn key → short name
  let inputs = [];
  const rows = new Map(); // "node/name" → {input, tr, valueCell, ageSpan}
  const groups = new Map(); // nodeid → age span of the group header
  let editing = null; // the description editor open, if any
  let reloadWanted = false;
  let loading = null;
  let disposed = false;

  const status = h('span.live-status.muted', { role: 'status' }, 'Connecting…');
  const count = h('span.muted');
  const body = h('div');
  clear(main,
    h('div.toolbar.page-head', h('h1', 'Inputs'), count, status),
    body);

  try {
    const procs = await get('process/list.json');
    for (const [key, p] of Object.entries(procs || {})) {
      shortByKey.set(key, p.short || p.name);
      if (p.id_num !== undefined && p.id_num !== null) shortByKey.set(String(p.id_num), p.short || p.name);
    }
  } catch {
    // Without the catalog the summaries show the stored keys; nothing else depends on it.
  }

  function newestTime(nodeid) {
    let t = 0;
    for (const r of rows.values()) {
      if (r.input.nodeid === nodeid && Number(r.input.time) > t) t = Number(r.input.time);
    }
    return t;
  }

  function paintAge(span, t, now, prefix = 'updated ') {
    span.textContent = t ? `${prefix}${ago(t, now)}` : `never ${prefix.trim()}`.trim();
    span.className = `age ${ageClass(t, now)}`;
  }

  function tick() {
    const now = Date.now() / 1000;
    for (const r of rows.values()) paintAge(r.ageSpan, Number(r.input.time) || 0, now, '');
    for (const [nodeid, span] of groups) paintAge(span, newestTime(nodeid), now);
  }

  function descriptionCell(input) {
    const label = `${input.nodeid} ${input.name}`;
    const td = h('td.desc');
    const show = () => {
      clear(td,
        input.description
          ? h('span.desc-text', input.description)
          : h('span.muted.desc-text', '—'),
        ' ',
        h('button.small', {
          type: 'button',
          'aria-label': `Edit description of ${label}`,
          title: 'Edit description',
          onclick: edit,
        }, 'Edit'));
    };
    function edit() {
      if (editing) editing.cancel();
      const box = h('input', {
        type: 'text', value: input.description || '', maxlength: 64,
        'aria-label': `Description of ${label}`, autocomplete: 'off',
      });
      const err = h('span.error', { role: 'alert' });
      const save = h('button.small.primary', { type: 'submit' }, 'Save');
      const cancelBtn = h('button.small', { type: 'button', onclick: () => close() }, 'Cancel');
      const close = (focusEdit = true) => {
        editing = null;
        show();
        if (focusEdit) td.querySelector('button')?.focus();
        if (reloadWanted) reload();
      };
      const form = h('form.desc-edit', {
        onsubmit: async (e) => {
          e.preventDefault();
          const description = box.value.trim();
          err.textContent = '';
          save.disabled = true;
          try {
            await post('input/set.json', null, { inputid: input.id, fields: { description } });
            input.description = description;
            toast('Description saved');
            close();
          } catch (ex) {
            err.textContent = ex.message;
            save.disabled = false;
            box.focus();
          }
        },
      }, box, save, cancelBtn, err);
      box.addEventListener('keydown', (e) => {
        if (e.key === 'Escape') { e.preventDefault(); close(); }
      });
      clear(td, form);
      editing = { cancel: () => close(false) };
      box.focus();
      box.select();
    }
    show();
    return td;
  }

  function inputRow(input) {
    const label = `${input.nodeid} ${input.name}`;
    const valueCell = h('td.num.value', fmtValue(input.value));
    const ageSpan = h('span.age');
    const procText = summary(input.processList, shortByKey);
    const tr = h('tr', { dataset: { input: keyOf(input.nodeid, input.name) } },
      h('th.name', { scope: 'row' }, input.name),
      descriptionCell(input),
      h('td.proc', h('span.narrow-label', 'Process list: '),
        procText ? h('span.proc-summary', procText) : h('span.muted', 'none')),
      valueCell,
      h('td.updated', h('span.narrow-label', 'Updated '), ageSpan),
      h('td.actions',
        h('a.button.small', {
          href: `/app/process?input=${encodeURIComponent(input.id)}`,
          'aria-label': `Process list of ${label}`,
        }, 'Process'),
        ' ',
        h('button.small.danger', {
          type: 'button',
          'aria-label': `Delete input ${label}`,
          onclick: () => remove(input),
        }, 'Delete')));
    rows.set(keyOf(input.nodeid, input.name), { input, tr, valueCell, ageSpan });
    return tr;
  }

  async function remove(input) {
    const label = `${input.nodeid}/${input.name}`;
    const ok = await confirmAction(`Delete the input ${label}? Its process list goes with it; feeds are kept.`);
    if (!ok) return;
    if (editing) editing.cancel();
    try {
      await post('input/delete.json', null, { inputid: input.id });
      toast(`Deleted ${label}`);
      await reload();
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  function emptyState() {
    const origin = location.origin;
    const example = `${origin}/input/post?node=emontx&fulljson={"power1":100}&apikey=${ctx.user?.apikey_write || 'YOUR_WRITE_APIKEY'}`;
    return h('div.card.empty',
      h('h2', 'No inputs yet'),
      h('p', 'Inputs appear here by themselves when a device posts data. Point your device (emonhub, an emonTx, an ESP8266, a script) at this server, or try it by opening this address:'),
      h('p', h('code.key', example)),
      h('p.muted', 'This page updates live: the new input shows up as soon as the first value arrives. The write apikey is in the address, so keep it private.'));
  }

  function draw() {
    rows.clear();
    groups.clear();
    if (!inputs.length) {
      count.textContent = '';
      clear(body, emptyState());
      return;
    }
    const byNode = new Map();
    for (const input of inputs) {
      if (!byNode.has(input.nodeid)) byNode.set(input.nodeid, []);
      byNode.get(input.nodeid).push(input);
    }
    const nodes = [...byNode.keys()].sort((a, b) => collator.compare(String(a), String(b)));
    const sections = nodes.map((nodeid) => {
      const list = byNode.get(nodeid).sort((a, b) => Number(a.id) - Number(b.id));
      const age = h('span.age');
      groups.set(nodeid, age);
      const headingId = `node-${Math.random().toString(36).slice(2, 9)}`;
      return h('section.group', { 'aria-labelledby': headingId },
        h('h2', { id: headingId }, h('span.node-name', String(nodeid)),
          h('span.muted.node-count', list.length === 1 ? '1 input' : `${list.length} inputs`), age),
        h('div.table-wrap',
          h('table.inputs',
            h('thead', h('tr',
              h('th', { scope: 'col' }, 'Name'),
              h('th', { scope: 'col' }, 'Description'),
              h('th', { scope: 'col' }, 'Process list'),
              h('th.num', { scope: 'col' }, 'Value'),
              h('th', { scope: 'col' }, 'Updated'),
              h('th', { scope: 'col' }, h('span.visually-hidden', 'Actions')))),
            h('tbody', list.map(inputRow)))));
    });
    count.textContent = `${inputs.length} input${inputs.length === 1 ? '' : 's'} on ${nodes.length} node${nodes.length === 1 ? '' : 's'}`;
    clear(body, sections);
    tick();
  }

  /** Fetch input/list.json again and redraw; calls made meanwhile share one fetch. */
  function reload() {
    if (editing) { reloadWanted = true; return Promise.resolve(); }
    reloadWanted = false;
    if (loading) { reloadWanted = true; return loading; }
    loading = (async () => {
      try {
        const list = await get('input/list.json');
        if (disposed) return;
        inputs = Array.isArray(list) ? list : [];
        // A description editor opened while the list was loading: redraw once it closes.
        if (editing) reloadWanted = true;
        else draw();
      } catch (e) {
        if (!disposed) toast(`Could not load the inputs: ${e.message}`, 'error');
      } finally {
        loading = null;
      }
      // Something asked for a reload while this one ran: the list may be older than that.
      if (reloadWanted && !disposed && !editing) await reload();
    })();
    return loading;
  }

  let reloadTimer = null;
  /** Several unknown inputs in one packet make one fetch. */
  function reloadSoon() {
    if (reloadTimer) return;
    reloadTimer = setTimeout(() => { reloadTimer = null; reload(); }, 250);
  }

  function onInput(ev) {
    const r = rows.get(keyOf(ev.nodeid, ev.name));
    if (!r) { reloadSoon(); return; }
    r.input.value = ev.value;
    r.input.time = ev.time;
    r.valueCell.textContent = fmtValue(ev.value);
    r.valueCell.classList.remove('flash');
    void r.valueCell.offsetWidth; // restart the highlight
    r.valueCell.classList.add('flash');
    const now = Date.now() / 1000;
    paintAge(r.ageSpan, Number(ev.time) || 0, now, '');
    const g = groups.get(r.input.nodeid);
    if (g) paintAge(g, newestTime(r.input.nodeid), now);
  }

  await reload();

  const close = live((kind, data) => {
    if (disposed) return;
    if (kind === 'input') onInput(data);
    else if (kind === 'resync') reload();
    else if (kind === 'open') {
      status.textContent = 'Live';
      status.className = 'live-status on';
      // Values sent between reading the list and the stream opening (or while it was down)
      // came with no event: read the list again now that nothing can slip through.
      reload();
    } else if (kind === 'error') {
      status.textContent = 'Reconnecting…';
      status.className = 'live-status muted';
    } else if (kind === 'closed') {
      status.textContent = 'Offline: log in again';
      status.className = 'live-status muted';
    }
  });
  const timer = setInterval(tick, 1000);

  const onOffline = () => { status.textContent = 'Offline'; status.className = 'live-status muted'; };
  window.addEventListener('offline', onOffline);

  return () => {
    disposed = true;
    close();
    clearInterval(timer);
    clearTimeout(reloadTimer);
    window.removeEventListener('offline', onOffline);
  };
}
