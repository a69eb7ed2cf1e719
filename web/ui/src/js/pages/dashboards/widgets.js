// Drawing a dashboard's widgets. Each kind turns a widget's model (its emoncms options) into
// elements built through the DOM API, and refreshes them from the feeds' latest values. The
// options each kind has, with the editor's labels, are in OPTIONS.

import { h } from '../../dom.js';
import { sanitize, TEXT_WIDGETS } from './content.js';

const SVG = 'http://www.w3.org/2000/svg';

/** Options of each kind the editor offers (emoncms's names, so its dashboards keep working). */
export const OPTIONS = {
  feedvalue: [
    { key: 'feedid', label: 'Feed', kind: 'feed' },
    { key: 'prepend', label: 'Text before' },
    { key: 'append', label: 'Text after (unit)' },
    { key: 'decimals', label: 'Decimals', kind: 'number', default: '1' },
    { key: 'scale', label: 'Scale by', kind: 'number', default: '1' },
    { key: 'size', label: 'Text size (px)', kind: 'number', default: '24' },
    { key: 'colour', label: 'Colour', kind: 'colour', default: '1b1f1c' },
  ],
  dial: [
    { key: 'feedid', label: 'Feed', kind: 'feed' },
    { key: 'max', label: 'Maximum', kind: 'number', default: '1000' },
    { key: 'scale', label: 'Scale by', kind: 'number', default: '1' },
    { key: 'units', label: 'Unit' },
    { key: 'decimals', label: 'Decimals', kind: 'number', default: '0' },
  ],
  jgauge: [
    { key: 'feedid', label: 'Feed', kind: 'feed' },
    { key: 'min', label: 'Minimum', kind: 'number', default: '0' },
    { key: 'max', label: 'Maximum', kind: 'number', default: '100' },
    { key: 'scale', label: 'Scale by', kind: 'number', default: '1' },
    { key: 'units', label: 'Unit' },
  ],
  led: [{ key: 'feedid', label: 'Feed (on above 0)', kind: 'feed' }],
  thresholds: [
    { key: 'feedid', label: 'Feed', kind: 'feed' },
    { key: 'threshold1', label: 'First threshold', kind: 'number', default: '10' },
    { key: 'threshold2', label: 'Second threshold', kind: 'number', default: '20' },
    { key: 'colour1', label: 'Colour below the first', kind: 'colour', default: '2e7d32' },
    { key: 'colour2', label: 'Colour between', kind: 'colour', default: 'f9a825' },
    { key: 'colour3', label: 'Colour above the second', kind: 'colour', default: 'c62828' },
  ],
  bar: [
    { key: 'feedid', label: 'Feed', kind: 'feed' },
    { key: 'max', label: 'Maximum', kind: 'number', default: '100' },
    { key: 'scale', label: 'Scale by', kind: 'number', default: '1' },
    { key: 'units', label: 'Unit' },
    { key: 'decimals', label: 'Decimals', kind: 'number', default: '0' },
    { key: 'colour', label: 'Colour', kind: 'colour', default: '1d6f42' },
  ],
  button: [
    { key: 'feedid', label: 'Feed it switches (0/1), or', kind: 'feed' },
    { key: 'inputnode', label: 'Input node it posts to' },
    { key: 'inputname', label: 'Input name' },
    { key: 'value', label: 'Value posted when switched on', kind: 'number', default: '1' },
  ],
  realtime: [
    { key: 'feedid', label: 'Feed', kind: 'feed' },
    { key: 'initzoom', label: 'Minutes shown', kind: 'number', default: '60' },
    { key: 'colour', label: 'Colour', kind: 'colour', default: '1d6f42' },
  ],
  bargraph: [
    { key: 'feedid', label: 'Feed (cumulative kWh for daily use)', kind: 'feed' },
    { key: 'interval', label: 'Days shown', kind: 'number', default: '14' },
    { key: 'delta', label: 'Use the rise per day (1) or the mean (0)', kind: 'number', default: '1' },
    { key: 'units', label: 'Unit', default: 'kWh' },
    { key: 'colour', label: 'Colour', kind: 'colour', default: '1d6f42' },
  ],
  paragraph: [{ key: '#text', label: 'Text', kind: 'textarea' }],
  heading: [{ key: '#text', label: 'Heading', kind: 'textarea' }],
  'heading-center': [{ key: '#text', label: 'Heading', kind: 'textarea' }],
  'Container-White': [],
  'Container-Grey': [],
  'Container-Black': [],
  'Container-BlueLine': [],
};

/** What the editor's palette adds, with a starting size. */
export const PALETTE = [
  ['feedvalue', 'Feed value', 160, 60], ['dial', 'Dial', 160, 140], ['jgauge', 'Gauge', 180, 120],
  ['led', 'LED', 60, 60], ['thresholds', 'Thresholds light', 60, 60], ['bar', 'Level bar', 200, 60],
  ['button', 'Button', 120, 60], ['realtime', 'Graph', 400, 220], ['bargraph', 'Bar graph', 400, 220],
  ['heading', 'Heading', 300, 40], ['paragraph', 'Text', 300, 80], ['Container-White', 'Box', 320, 200],
];

/** Graph kinds of emoncms's vis module, drawn as ynni's line graph. */
const LINE_GRAPHS = new Set(['realtime', 'rawdata', 'zoom', 'simplezoom', 'smoothie', 'multigraph']);

/** The widget's option `key` (its default when unset). */
export function option(w, key) {
  const v = w.attrs[key];
  if (v !== undefined && v !== '') return v;
  return (OPTIONS[w.type] || []).find((o) => o.key === key)?.default ?? '';
}

const num = (v, d = 0) => {
  const n = Number(v);
  return Number.isFinite(n) ? n : d;
};

/** A feed's value scaled and fixed, or '—'. */
export function shown(value, scale, decimals) {
  if (value === null || value === undefined || value === '' || !Number.isFinite(Number(value))) return '—';
  return (Number(value) * num(scale, 1)).toFixed(Math.min(6, Math.max(0, Math.round(num(decimals, 0)))));
}

/** A colour option (hex without '#') as CSS, or `fallback`. */
function colour(v, fallback) {
  return /^[0-9a-f]{3}([0-9a-f]{3})?$/i.test(String(v || '')) ? `#${v}` : fallback;
}

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** The point at `fraction` (0…1) of an arc from `from` to `to` degrees (0 = up, clockwise). */
function arcPoint(cx, cy, r, deg) {
  const a = ((deg - 90) * Math.PI) / 180;
  return [cx + r * Math.cos(a), cy + r * Math.sin(a)];
}

function arcPath(cx, cy, r, from, to) {
  const [x1, y1] = arcPoint(cx, cy, r, from);
  const [x2, y2] = arcPoint(cx, cy, r, to);
  return `M ${x1.toFixed(2)} ${y1.toFixed(2)} A ${r} ${r} 0 ${to - from > 180 ? 1 : 0} 1 ${x2.toFixed(2)} ${y2.toFixed(2)}`;
}

/** A dial or gauge: an arc from `from` to `to` degrees filled to the value's share. */
function arcWidget(el, w, ctx, from, to, min, max) {
  const box = svg('svg', { viewBox: '0 0 100 100', class: 'dial', role: 'img' });
  const track = svg('path', { d: arcPath(50, 55, 40, from, to), class: 'dial-track' });
  const fill = svg('path', { d: '', class: 'dial-fill' });
  const text = svg('text', { x: 50, y: 62, 'text-anchor': 'middle', class: 'dial-value' });
  box.append(track, fill, text);
  el.append(box);
  return (values) => {
    const v = ctx.value(w.attrs.feedid, values);
    const scaled = v === null ? null : Number(v) * num(option(w, 'scale'), 1);
    const share = scaled === null || max <= min ? 0 : Math.min(1, Math.max(0, (scaled - min) / (max - min)));
    fill.setAttribute('d', share > 0 ? arcPath(50, 55, 40, from, from + share * (to - from)) : '');
    const label = `${shown(v, option(w, 'scale'), option(w, 'decimals'))}${option(w, 'units') ? ` ${option(w, 'units')}` : ''}`;
    text.textContent = label;
    box.setAttribute('aria-label', label);
    el.dataset.value = scaled === null ? '' : String(scaled);
  };
}

/** A line graph of one feed over the last `initzoom` minutes (uPlot, loaded when needed). */
function lineGraph(box, w, ctx) {
  const id = w.attrs.feedid || w.attrs.power;
  const minutes = Math.max(1, num(option(w, 'initzoom'), 60));
  const el = h('div.plot');
  box.append(el);
  let chart = null;
  return async () => {
    const feed = ctx.feedId(id);
    if (!feed) { el.textContent = 'Choose a feed'; return; }
    const end = Date.now();
    const start = end - minutes * 60000;
    const interval = Math.max(1, Math.round((end - start) / 1000 / 400));
    const data = await ctx.get('feed/data.json', { id: feed, start, end, interval, average: 1, skipmissing: 0, limitinterval: 0 });
    const xs = data.map((p) => p[0] / 1000);
    const ys = data.map((p) => (p[1] === null ? null : Number(p[1])));
    box.dataset.points = String(ys.filter((y) => y !== null).length);
    const uPlot = (await import('/ui/vendor/uPlot.esm.js')).default;
    const size = { width: Math.max(100, box.clientWidth), height: Math.max(60, box.clientHeight - 4) };
    if (chart) { chart.setData([xs, ys]); chart.setSize(size); return; }
    el.replaceChildren();
    chart = new uPlot({
      ...size,
      legend: { show: false },
      series: [{}, { stroke: colour(option(w, 'colour'), '#1d6f42'), width: 1.5, spanGaps: false }],
      axes: [{}, { size: 50 }],
    }, [xs, ys], el);
  };
}

/** Bars of a feed per day: the rise of a cumulative feed (delta) or the daily mean. */
function barGraph(el, w, ctx) {
  const days = Math.min(366, Math.max(1, Math.round(num(option(w, 'interval'), 14))));
  const bars = h('div.bars', { role: 'img' });
  const caption = h('small.muted');
  el.append(bars, caption);
  return async () => {
    const feed = ctx.feedId(w.attrs.feedid);
    if (!feed) { caption.textContent = 'Choose a feed'; return; }
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    const start = midnight.getTime() - (days - 1) * 86400000;
    const delta = option(w, 'delta') !== '0';
    const data = await ctx.get('feed/data.json', {
      id: feed, start, end: Date.now(), interval: 'daily', delta: delta ? 1 : 0, average: delta ? 0 : 1, skipmissing: 0, limitinterval: 0,
    });
    const vals = data.map((p) => (p[1] === null ? null : Number(p[1])));
    const max = Math.max(0.001, ...vals.map((v) => v ?? 0));
    const unit = option(w, 'units');
    bars.replaceChildren(...data.map((p, i) => {
      const fill = h('span');
      fill.style.height = `${Math.round((100 * (vals[i] ?? 0)) / max)}%`;
      fill.style.background = colour(option(w, 'colour'), '');
      const day = new Date(p[0]).toISOString().slice(0, 10);
      return h('div.bar', { title: `${day}: ${vals[i] === null ? '—' : vals[i].toFixed(1)} ${unit}`, dataset: { date: day, value: vals[i] ?? '' } }, fill);
    }));
    bars.setAttribute('aria-label', `${unit} per day, last ${days} days`);
    caption.textContent = `${days} days, ${unit} per day`;
  };
}

/**
 * Draws widget `w` into a new element. `ctx` gives `value(ref, values)`, `feedId(ref)`,
 * `get(path, params)` (reads, with any share token) and `press(w, on)` (a button's action, or
 * null when the viewer may not change anything). Returns {el, update(values)}; update may be async.
 */
export function drawWidget(w, ctx) {
  const el = h(`div.widget.w-${w.type.replace(/[^A-Za-z0-9_-]/g, '')}`, { dataset: { widget: w.type, id: w.id } });
  let update = () => {};
  const t = w.type;
  if (TEXT_WIDGETS.has(t)) {
    const doc = new DOMParser().parseFromString(`<!doctype html><body>${w.inner || ''}`, 'text/html');
    el.append(sanitize(doc.body, document));
  } else if (t.startsWith('Container-')) {
    el.classList.add('container');
  } else if (t === 'feedvalue') {
    const out = h('span.fv');
    out.style.fontSize = `${Math.min(200, Math.max(6, num(option(w, 'size'), 24)))}px`;
    out.style.color = colour(option(w, 'colour'), '');
    el.append(out);
    update = (values) => {
      const v = ctx.value(w.attrs.feedid, values);
      out.textContent = `${option(w, 'prepend')}${shown(v, option(w, 'scale'), option(w, 'decimals'))}${option(w, 'append')}`;
      el.dataset.value = v === null ? '' : String(Number(v) * num(option(w, 'scale'), 1));
    };
  } else if (t === 'dial') {
    update = arcWidget(el, w, ctx, -135, 135, 0, num(option(w, 'max'), 1000));
  } else if (t === 'jgauge' || t === 'jgauge2') {
    update = arcWidget(el, w, ctx, -90, 90, num(option(w, 'min'), 0), num(option(w, 'max'), 100));
  } else if (t === 'led' || t === 'thresholds') {
    const light = h('span.led', { role: 'img' });
    el.append(light);
    update = (values) => {
      const v = ctx.value(w.attrs.feedid, values);
      let c = '#9e9e9e';
      let state = 'none';
      if (v !== null && t === 'led') { state = Number(v) > 0 ? 'on' : 'off'; c = state === 'on' ? '#2e7d32' : '#c62828'; }
      if (v !== null && t === 'thresholds') {
        const n = Number(v);
        state = n < num(option(w, 'threshold1')) ? '1' : n < num(option(w, 'threshold2')) ? '2' : '3';
        c = colour(option(w, `colour${state}`), c);
      }
      light.style.background = c;
      light.setAttribute('aria-label', `${state} (${v ?? 'no value'})`);
      el.dataset.state = state;
    };
  } else if (t === 'bar' || t === 'thermometer') {
    const fill = h('span');
    const label = h('span.bar-label');
    el.append(h('div.level', fill), label);
    fill.style.background = colour(option(w, 'colour'), '');
    update = (values) => {
      const v = ctx.value(w.attrs.feedid, values);
      const scaled = v === null ? 0 : Number(v) * num(option(w, 'scale'), 1);
      fill.style.width = `${Math.min(100, Math.max(0, (100 * scaled) / Math.max(1e-9, num(option(w, 'max'), 100))))}%`;
      label.textContent = `${shown(v, option(w, 'scale'), option(w, 'decimals'))} ${option(w, 'units')}`.trim();
      el.dataset.value = v === null ? '' : String(scaled);
    };
  } else if (t === 'button') {
    const button = h('button', { type: 'button', class: 'dash-button' });
    el.append(button);
    let on = false;
    update = (values) => {
      const v = ctx.value(w.attrs.feedid, values);
      if (w.attrs.feedid) on = v !== null && Number(v) > 0;
      button.textContent = on ? 'On' : 'Off';
      button.setAttribute('aria-pressed', on ? 'true' : 'false');
      button.disabled = !ctx.press;
    };
    button.addEventListener('click', async () => {
      if (!ctx.press) return;
      const next = !on;
      if (await ctx.press(w, next)) { on = next; update(null); }
    });
  } else if (LINE_GRAPHS.has(t)) {
    el.classList.add('graph');
    update = lineGraph(el, w, ctx);
  } else if (t === 'bargraph' || t === 'orderbars') {
    el.classList.add('graph');
    update = barGraph(el, w, ctx);
  } else {
    el.append(h('small.muted', `${t}: ynni does not draw this widget`));
  }
  return { el, update };
}
