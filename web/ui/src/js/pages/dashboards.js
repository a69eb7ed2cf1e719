// Dashboards (emoncms's dashboard module, drawn by ynni): the user's dashboards with their
// settings, one dashboard drawn (`?id=`, or `?alias=` with `username=` for another user's
// public one), and its editor (`&edit=1`). A share link (`?share=<token>&id=`) shows one
// dashboard read-only without logging in. The widgets read `dashboard/view.json`, which
// holds the values of the feeds they name, every 10 s.

import { h, clear, field, toast } from '../dom.js';
import { get, post, FalseReply } from '../api.js';
import { parse } from './dashboards/content.js';
import { drawWidget } from './dashboards/widgets.js';
import { startEditor } from './dashboards/editor.js';

const POLL_MS = 10000;
/** Graphs fetch their data once a minute, not at every poll. */
const GRAPH_EVERY = 6;

async function settingsForm(d, onSaved) {
  const name = h('input', { name: 'name', value: d.name, maxlength: 30 });
  const alias = h('input', { name: 'alias', value: d.alias, maxlength: 20 });
  const description = h('input', { name: 'description', value: d.description, maxlength: 255 });
  const bg = h('input', { name: 'backgroundcolor', type: 'color', value: `#${/^[0-9a-f]{6}$/i.test(d.backgroundcolor) ? d.backgroundcolor.toLowerCase() : 'edf7fc'}` });
  const gridsize = h('input', { name: 'gridsize', type: 'number', min: 1, max: 200, value: String(d.gridsize) });
  const box = (key, label) => h('label', h('input', { type: 'checkbox', name: key, checked: d[key] }), ` ${label}`);
  return h('form.card.no-print', {
    'aria-label': 'Dashboard settings',
    onsubmit: async (e) => {
      e.preventDefault();
      const f = e.target;
      const fields = {
        name: name.value, alias: alias.value, description: description.value,
        backgroundcolor: bg.value.replace('#', ''), gridsize: gridsize.value,
        main: f.main.checked, public: f.public.checked, published: f.published.checked, showdescription: f.showdescription.checked,
      };
      try {
        await post('dashboard/set.json', { id: d.id, fields });
        toast('Settings saved');
        onSaved();
      } catch (err) { toast(err.message, 'error'); }
    },
  }, h('h2', 'Settings'), field('Name', name), field('Alias (its address)', alias), field('Description', description),
  field('Background', bg), field('Grid (px)', gridsize),
  h('div.checks', box('main', 'Main dashboard'), box('public', 'Public: anyone may view it (with your public feeds only)'),
    box('published', 'Listed'), box('showdescription', 'Show the description')),
  h('button.primary', { type: 'submit' }, 'Save settings'));
}

function shareCard(d) {
  const out = h('p');
  const embed = h('input', { type: 'checkbox', name: 'embed' });
  return h('section.card.no-print', h('h2', 'Share'),
    h('p.muted', 'A link that shows this dashboard and reads only the feeds its widgets show: not your other feeds, inputs or account. Your account page lists your links and revokes them.'),
    h('label', embed, ' Let other sites show it in a frame (embedding)'), ' ',
    h('button', {
      type: 'button',
      onclick: async () => {
        try {
          const link = await get('share/create.json', { dashboard: d.id, label: d.name, embed: embed.checked ? 1 : 0 });
          clear(out, h('code', { id: 'share-url' }, `${location.origin}/app/dashboards?id=${d.id}&share=${link.token}`));
        } catch (e) { toast(e.message, 'error'); }
      },
    }, 'Make a share link'), out);
}

/** The list of the user's dashboards, with a button to make one. */
async function listPage(main) {
  const rows = await get('dashboard/list.json');
  const create = async () => {
    try {
      const id = await post('dashboard/create.json');
      await post('dashboard/set.json', { id, fields: { name: 'New dashboard' } });
      location.href = `/app/dashboards?id=${id}&edit=1`;
    } catch (e) { toast(e.message, 'error'); }
  };
  const action = (label, path, params, then) => h('button', {
    type: 'button',
    onclick: async () => {
      try { await then(await post(path, params)); } catch (e) { toast(e.message, 'error'); }
    },
  }, label);
  clear(main, h('h1', 'Dashboards'),
    h('div.toolbar', h('button.primary', { type: 'button', onclick: create }, 'New dashboard')),
    rows.length === 0 ? h('p.muted', 'No dashboards yet. Dashboards imported from emoncms appear here too.')
      : h('div.table-wrap', h('table', { id: 'dashboards' },
        h('thead', h('tr', h('th', 'Name'), h('th', 'Alias'), h('th', 'Public'), h('th', 'Actions'))),
        h('tbody', rows.map((r) => h('tr', { dataset: { id: r.id } },
          h('td', h('a', { href: `/app/dashboards?id=${r.id}` }, r.name), r.main ? h('small.muted', ' (main)') : null),
          h('td', r.alias), h('td', r.public ? 'yes' : 'no'),
          h('td.actions',
            h('a.button', { href: `/app/dashboards?id=${r.id}&edit=1` }, 'Edit'),
            action('Copy', 'dashboard/clone.json', { id: r.id }, () => listPage(main)),
            h('button.danger', {
              type: 'button',
              onclick: async () => {
                if (!window.confirm(`Delete the dashboard "${r.name}"?`)) return;
                try { await post('dashboard/delete.json', { id: r.id }); await listPage(main); } catch (e) { toast(e.message, 'error'); }
              },
            }, 'Delete'))))))));
  main.dataset.ready = 'dashboards';
}

/** Feed values by id and by `tag:name`, from view.json's feeds. */
function index(feeds) {
  const byId = new Map();
  const byName = new Map();
  for (const f of feeds || []) {
    byId.set(String(f.id), f);
    byName.set(`${f.tag}:${f.name}`, f);
  }
  return { byId, byName };
}

export async function render(main, ctx) {
  const p = ctx.params;
  const token = p.get('share');
  const q = token ? { share: token } : {};
  const wanted = { id: p.get('id') ?? undefined, alias: p.get('alias') ?? undefined, username: p.get('username') ?? undefined };
  if (!wanted.id && !wanted.alias) {
    if (!ctx.user) { location.replace('/app/login?next=/app/dashboards'); return undefined; }
    return listPage(main);
  }
  let d;
  try {
    d = await get('dashboard/view.json', { ...wanted, ...q });
  } catch (e) {
    if (!(e instanceof FalseReply)) throw e;
    clear(main, h('h1', 'Dashboard'), h('p', 'There is no such dashboard, or it is not shared with you.'),
      ctx.user ? null : h('p', h('a', { href: `/app/login?next=${encodeURIComponent(location.pathname + location.search)}` }, 'Log in')));
    return undefined;
  }
  document.title = `${d.name} · ynni`;
  const editing = p.get('edit') === '1' && d.editable;
  let values = index(d.feeds);
  const board = { widgets: parse(d.content) };
  const stage = h('div.dash-stage', { id: 'dashboard', dataset: { id: d.id } });
  stage.style.background = /^[0-9a-f]{3,6}$/i.test(d.backgroundcolor) ? `#${d.backgroundcolor}` : '';
  stage.style.height = `${Math.max(40, Number(d.height) || 0)}px`;
  const frame = h('div.dash-frame', stage);
  const panel = h('div');
  const feedId = (ref) => {
    const f = values.byId.get(String(ref ?? '').trim()) || values.byName.get(String(ref ?? '').trim());
    return f ? f.id : null;
  };
  const wctx = {
    value: (ref, vals) => {
      const v = vals || values;
      const f = v.byId.get(String(ref ?? '').trim()) || v.byName.get(String(ref ?? '').trim());
      return f && f.value !== null && f.value !== undefined ? f.value : null;
    },
    feedId,
    get: (path, params) => get(path, { ...params, ...q }),
    // Switching needs the owner's login session: a visitor or a share link only looks.
    press: d.editable ? async (w, on) => {
      try {
        if (w.attrs.inputnode && w.attrs.inputname) {
          const value = on ? Number(w.attrs.value ?? 1) || 1 : 0;
          await post('input/post.json', { node: w.attrs.inputnode, fulljson: { [w.attrs.inputname]: value } });
        } else if (feedId(w.attrs.feedid)) {
          await post('feed/insert.json', {}, { id: feedId(w.attrs.feedid), time: Math.floor(Date.now() / 1000), value: on ? 1 : 0 });
        } else {
          toast('This button has no feed or input to switch', 'error');
          return false;
        }
        return true;
      } catch (e) { toast(e.message, 'error'); return false; }
    } : null,
  };
  const drawn = new Map();
  const place = (w) => {
    const widget = drawWidget(w, wctx);
    Object.assign(widget.el.style, { position: 'absolute', left: w.box.left, top: w.box.top, width: w.box.width, height: w.box.height });
    const old = stage.querySelector(`.widget[data-id="${w.id}"]`);
    if (old) old.replaceWith(widget.el); else stage.append(widget.el);
    drawn.set(w.id, widget);
    Promise.resolve(widget.update(values)).catch((e) => { widget.el.title = e.message; });
    return widget.el;
  };
  board.place = place;
  clear(main,
    h('div.dash-head', h('h1', d.name),
      d.editable && !editing ? h('a.button.no-print', { href: `/app/dashboards?id=${d.id}&edit=1` }, 'Edit') : null,
      ctx.user ? h('a.button.no-print', { href: '/app/dashboards' }, 'All dashboards') : null),
    d.showdescription ? h('p.muted', d.description) : null,
    panel, frame);
  for (const w of board.widgets) place(w);
  // A phone sees the whole dashboard, scaled down to its width; the editor works at full size.
  const fit = () => {
    const width = Math.max(...board.widgets.map((w) => (parseFloat(w.box.left) || 0) + (w.box.width.endsWith('%') ? 0 : parseFloat(w.box.width) || 0)), 1);
    const scale = editing ? 1 : Math.min(1, frame.clientWidth / width);
    stage.style.transform = scale < 1 ? `scale(${scale})` : '';
    stage.style.width = scale < 1 ? `${width}px` : '';
    frame.style.height = `${stage.offsetHeight * scale}px`;
  };
  fit();
  window.addEventListener('resize', fit);
  if (editing) {
    const feeds = await get('feed/list.json');
    startEditor({ stage, panel, board, d, feeds });
    frame.style.height = '';
    window.removeEventListener('resize', fit);
  } else if (d.editable) {
    main.append(await settingsForm(d, () => location.reload()), shareCard(d));
  }
  let polls = 0;
  const timer = setInterval(async () => {
    try {
      const fresh = await get('dashboard/view.json', { id: d.id, ...q });
      values = index(fresh.feeds);
      polls += 1;
      for (const [id, widget] of drawn) {
        const w = board.widgets.find((x) => x.id === id);
        if (!w) continue;
        const graph = widget.el.classList.contains('graph');
        if (!graph || polls % GRAPH_EVERY === 0) await widget.update(values);
      }
    } catch { /* the next poll tries again */ }
  }, POLL_MS);
  return () => clearInterval(timer);
}
