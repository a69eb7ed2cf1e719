// The dashboard editor: add widgets from a palette, move them by dragging and resize them by
// their corner handle (pointer events, so a mouse, a pen and a finger all work), set their
// options in a form, and save the content in emoncms's format (dashboard/setcontent).
// Positions snap to the dashboard's grid. Every box can also be placed by typing numbers.

import { h, clear, field, toast } from '../../dom.js';
import { post } from '../../api.js';
import { OPTIONS, PALETTE } from './widgets.js';
import { serialize, contentHeight, snap, nextId, px, escapeText } from './content.js';

/** Unescapes a text widget's inner HTML into editable text (inert: a template runs nothing). */
function innerText(inner) {
  const t = document.createElement('template');
  t.innerHTML = String(inner || '').replace(/<br\s*\/?>/gi, '\n');
  return t.content.textContent;
}

/**
 * Starts editing `stage` (the drawn dashboard). `board` gives the widgets' models
 * (`board.widgets`), `place(w)` to draw or redraw one widget and return its element, and the
 * dashboard `d`. `feeds` are the owner's feeds for the feed choices. `panel` receives the tools.
 */
export function startEditor({ stage, panel, board, d, feeds }) {
  const grid = Math.max(1, Number(d.gridsize) || 20);
  let selected = null;
  let dirty = false;
  stage.classList.add('editing');
  stage.dataset.saved = '0';

  const form = h('form.card.dash-options', { 'aria-label': 'Widget options' });
  const status = h('span.muted', { role: 'status' });

  function boxPx(w) {
    const width = stage.clientWidth;
    return { left: px(w.box.left, width), top: px(w.box.top, 0), width: px(w.box.width, width), height: px(w.box.height, 0) };
  }

  function setBox(w, b) {
    w.box = { left: `${b.left}px`, top: `${b.top}px`, width: `${b.width}px`, height: `${b.height}px` };
    dirty = true;
    status.textContent = 'Not saved';
  }

  function growStage() {
    stage.style.height = `${Math.max(Number(d.height) || 0, contentHeight(board.widgets, stage.clientWidth) + 4 * grid)}px`;
  }

  function select(w) {
    selected = w;
    for (const el of stage.querySelectorAll('.widget')) el.classList.toggle('selected', el.dataset.id === String(w?.id));
    drawForm();
  }

  /** Makes a drawn widget movable and resizable. */
  function handles(w, el) {
    el.tabIndex = 0;
    el.setAttribute('aria-label', `${w.type} widget ${w.id}`);
    const corner = h('span.resize', { title: 'Drag to resize', 'aria-hidden': 'true' });
    el.append(corner);
    el.addEventListener('focus', () => { if (selected !== w) select(w); });
    el.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      select(w);
      const resizing = e.target === corner;
      const start = boxPx(w);
      const [x0, y0] = [e.clientX, e.clientY];
      el.setPointerCapture(e.pointerId);
      const move = (m) => {
        const [dx, dy] = [m.clientX - x0, m.clientY - y0];
        const b = { ...start };
        if (resizing) {
          b.width = Math.max(grid, snap(start.width + dx, grid));
          b.height = Math.max(grid, snap(start.height + dy, grid));
        } else {
          b.left = snap(start.left + dx, grid);
          b.top = snap(start.top + dy, grid);
        }
        setBox(w, b);
        Object.assign(el.style, { left: w.box.left, top: w.box.top, width: w.box.width, height: w.box.height });
      };
      const up = () => {
        el.removeEventListener('pointermove', move);
        el.removeEventListener('pointerup', up);
        el.removeEventListener('pointercancel', up);
        growStage();
        // A resized graph redraws at its new size.
        if (resizing) redraw(w);
        drawForm();
      };
      el.addEventListener('pointermove', move);
      el.addEventListener('pointerup', up);
      el.addEventListener('pointercancel', up);
    });
  }

  function redraw(w) {
    const el = board.place(w);
    handles(w, el);
    el.classList.toggle('selected', selected === w);
  }

  function drawForm() {
    if (!selected) {
      clear(form, h('h2', 'Widget options'), h('p.muted', 'Choose a widget on the dashboard, or add one.'));
      return;
    }
    const w = selected;
    const b = boxPx(w);
    const number = (key, value) => h('input', { name: key, type: 'number', step: 'any', value: String(Math.round(value)) });
    const geometry = ['left', 'top', 'width', 'height'].map((k) => field(k[0].toUpperCase() + k.slice(1), number(`box-${k}`, b[k])));
    const opts = (OPTIONS[w.type] || []).map((o) => {
      let input;
      if (o.kind === 'feed') {
        input = h('select', { name: o.key }, h('option', { value: '' }, '(none)'),
          feeds.map((f) => h('option', { value: String(f.id) }, `${f.tag ? `${f.tag}: ` : ''}${f.name}`)));
        input.value = w.attrs[o.key] ?? '';
      } else if (o.kind === 'textarea') {
        input = h('textarea', { name: o.key, rows: 3 });
        input.value = innerText(w.inner);
      } else {
        input = h('input', { name: o.key, value: w.attrs[o.key] ?? '', placeholder: o.default ?? '', type: o.kind === 'number' ? 'number' : 'text', step: 'any' });
      }
      return field(o.label, input);
    });
    const known = new Set((OPTIONS[w.type] || []).map((o) => o.key));
    const others = Object.keys(w.attrs).filter((k) => !known.has(k));
    clear(form,
      h('h2', `${PALETTE.find(([t]) => t === w.type)?.[1] || w.type} (widget ${w.id})`),
      h('div.dash-geometry', geometry), opts,
      others.length ? h('p.muted', `Kept as they are: ${others.join(', ')}`) : null,
      h('div.row', h('button.primary', { type: 'submit' }, 'Apply'),
        h('button.danger', {
          type: 'button',
          onclick: () => {
            board.widgets.splice(board.widgets.indexOf(w), 1);
            stage.querySelector(`.widget[data-id="${w.id}"]`)?.remove();
            dirty = true;
            status.textContent = 'Not saved';
            select(null);
          },
        }, 'Remove widget')));
    form.onsubmit = (e) => {
      e.preventDefault();
      const data = new FormData(form);
      const g = (k) => Number(data.get(`box-${k}`));
      setBox(w, {
        left: Math.max(0, g('left')), top: Math.max(0, g('top')), width: Math.max(1, g('width')), height: Math.max(1, g('height')),
      });
      for (const o of OPTIONS[w.type] || []) {
        const v = String(data.get(o.key) ?? '');
        if (o.kind === 'textarea') w.inner = escapeText(v);
        else if (v === '') delete w.attrs[o.key];
        else w.attrs[o.key] = v;
      }
      redraw(w);
      growStage();
    };
  }

  const kind = h('select', { name: 'widget' }, PALETTE.map(([t, label]) => h('option', { value: t }, label)));
  const add = () => {
    const [type, , width, height] = PALETTE.find(([t]) => t === kind.value);
    const w = { id: nextId(board.widgets), type, box: {}, attrs: {}, inner: type === 'heading' ? 'Heading' : '' };
    for (const o of OPTIONS[type] || []) if (o.default !== undefined && o.kind !== 'feed') w.attrs[o.key] = o.default;
    const top = snap(contentHeight(board.widgets, stage.clientWidth) + grid, grid);
    setBox(w, { left: grid, top, width: snap(width, grid), height: snap(height, grid) });
    board.widgets.push(w);
    growStage();
    redraw(w);
    select(w);
    stage.querySelector(`.widget[data-id="${w.id}"]`)?.scrollIntoView({ block: 'nearest' });
  };
  const save = async () => {
    const content = serialize(board.widgets);
    try {
      // emoncms's designer encodes the content once more inside the form; the server undoes it.
      await post('dashboard/setcontent.json', {
        id: d.id, content: encodeURIComponent(content), height: contentHeight(board.widgets, stage.clientWidth),
      });
      dirty = false;
      status.textContent = 'Saved';
      stage.dataset.saved = String(Number(stage.dataset.saved) + 1);
      toast('Dashboard saved');
    } catch (e) {
      toast(e.message, 'error');
    }
  };
  clear(panel,
    h('div.toolbar.dash-tools', field('Widget', kind), h('button', { type: 'button', onclick: add }, 'Add widget'),
      h('button.primary', { type: 'button', onclick: save }, 'Save'),
      h('a.button', { href: `/app/dashboards?id=${d.id}` }, 'Done'), status),
    form);
  for (const w of board.widgets) handles(w, stage.querySelector(`.widget[data-id="${w.id}"]`));
  growStage();
  drawForm();
  // Leaving with changes not saved asks first.
  window.addEventListener('beforeunload', (e) => { if (dirty) e.preventDefault(); });
}
