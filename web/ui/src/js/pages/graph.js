// The graph: one or more feeds on a time axis, drawn with uPlot. Data is fetched at about one
// point per pixel of the plot (feed/data.json with a matching interval), so a year of 10 s data
// costs no more than an hour of it, and every zoom or pan fetches again at the new resolution.
// The whole view lives in the address, so it can be bookmarked or shared:
//   /app/graph?feeds=1,2&right=2&start=<unix s>&end=<unix s>&avg=0&mode=daily&delta=1

import uPlot from '/ui/vendor/uPlot.esm.js';
import { h, clear, toast, fmtValue } from '../dom.js';
import { get } from '../api.js';
import { fmtInterval, isCumulative } from '../feedmeta.js';

const HOUR = 3600;
const DAY = 86400;
const PRESETS = [['Hour', HOUR], ['Day', DAY], ['Week', 7 * DAY], ['Month', 30 * DAY], ['Year', 365 * DAY], ['All', 0]];
const MODES = ['none', 'daily', 'weekly', 'monthly'];
const PERIOD = { daily: DAY, weekly: 7 * DAY, monthly: 30.44 * DAY };
const MODE_WORD = { daily: 'Daily', weekly: 'Weekly', monthly: 'Monthly' };
const COLOURS = ['#1d6f42', '#2563eb', '#c2410c', '#9333ea', '#0e7490', '#b91c1c', '#4d7c0f', '#a16207'];
const MAX_POINTS = 20000; // the server refuses requests for more
const WHEEL_WAIT = 100; // ms of quiet after the last wheel step before fetching
const MAX_SPAN = 100 * 365 * DAY;
// Request intervals are picked from this ladder (those that are multiples of the feed interval),
// so that zooming lands on round steps and regular sample cadences keep being hit.
const LADDER = [1, 2, 5, 10, 15, 20, 30, 40, 60, 90, 120, 180, 240, 300, 360, 480, 600, 720, 900,
  1200, 1800, 2400, 3600, 5400, 7200, 10800, 14400, 21600, 28800, 43200, 86400];
const MARK_FIRST = 'ynni:graph:first-draw';
const MARK_START = 'ynni:graph:redraw-start';
const MEASURE = 'ynni:graph:redraw';

const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** A timezone name that Intl accepts, or null (then the browser's own zone is used). */
function validZone(tz) {
  if (!tz || typeof tz !== 'string') return null;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz }).format(0);
    return tz;
  } catch {
    return null;
  }
}


function withUnit(v, unit) {
  const text = fmtValue(v);
  return unit && text !== '—' ? `${text} ${unit}` : text;
}

/** Reads ?feeds=&right=&start=&end=&avg=&mode=&delta= against the feeds that exist. */
function readParams(params, byId) {
  const list = (name) => (params.get(name) || '').split(',').map((s) => s.trim()).filter((id) => byId.has(id));
  const feeds = [...new Set(list('feeds'))];
  const right = new Set(list('right').filter((id) => feeds.includes(id)));
  let start = num(params.get('start'));
  let end = num(params.get('end'));
  if (start > 1e11) start /= 1000; // milliseconds, as data.json accepts
  if (end > 1e11) end /= 1000;
  const mode = MODES.includes(params.get('mode')) ? params.get('mode') : 'none';
  return {
    feeds,
    right,
    start: Number.isFinite(start) ? Math.round(start) : NaN,
    end: Number.isFinite(end) ? Math.round(end) : NaN,
    // Averaging is on unless the address turns it off: a sample per pixel of a long range
    // shows aliasing (one value every 12 h of a 10 s feed), the mean of each pixel does not.
    avg: params.get('avg') !== '0',
    mode,
    delta: params.get('delta') === '1',
  };
}

export async function render(main, ctx) {
  const tz = validZone(ctx.user && ctx.user.timezone);
  const zoneOpt = tz ? { timeZone: tz } : {};
  const zoneName = tz || new Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  const fmtLong = new Intl.DateTimeFormat(undefined, { ...zoneOpt, dateStyle: 'medium', timeStyle: 'medium' });
  const fmtShort = new Intl.DateTimeFormat(undefined, { ...zoneOpt, dateStyle: 'medium', timeStyle: 'short' });
  const fmtDay = new Intl.DateTimeFormat(undefined, { ...zoneOpt, dateStyle: 'medium' });
  const fmtMonth = new Intl.DateTimeFormat(undefined, { ...zoneOpt, year: 'numeric', month: 'long' });

  main.append(h('h1', 'Graph'));
  const status = h('p.graph-status');
  main.append(status);

  let feeds;
  try {
    feeds = await get('feed/list.json', { meta: 1 });
  } catch (e) {
    status.classList.add('error');
    status.textContent = `Could not list your feeds: ${e.message}`;
    return undefined;
  }
  if (!Array.isArray(feeds)) feeds = [];
  for (const f of feeds) f.id = String(f.id);
  const byId = new Map(feeds.map((f) => [f.id, f]));
  if (!feeds.length) {
    status.remove();
    main.append(h('p', 'You have no feeds yet. Feeds are made by the process list of an input: ',
      h('a', { href: '/app/inputs' }, 'go to inputs'), '.'));
    return undefined;
  }

  // ---- state -------------------------------------------------------------------------------
  const state = readParams(ctx.params, byId);
  const hadFeeds = state.feeds.length > 0;
  if (!hadFeeds) state.feeds = [feeds[0].id];

  let u = null; // the uPlot instance
  let chartSig = ''; // what it was built for (feeds, axes, mode)
  let seq = 0; // request counter: replies to older requests are dropped
  let draws = 0;
  let lastInterval = null; // the interval of the data on screen (seconds, or a mode name)
  let pendingMeasure = false;
  let wheelTimer = 0;
  let resizeTimer = 0;
  let endDrag = null;
  let touch = null;
  let gone = false;

  const selected = () => state.feeds.map((id) => byId.get(id)).filter(Boolean);
  const meta = (f) => ({
    start: num(f.start_time) || 0,
    end: num(f.end_time) || 0,
    interval: num(f.interval) || 0,
  });
  const hasMeta = (f) => f.start_time !== undefined && f.end_time !== undefined;
  /** The feed's own step in seconds (PHPFina: its interval; others: about their spacing). */
  const feedStep = (f) => {
    const m = meta(f);
    if (m.interval > 0) return Math.max(1, Math.round(m.interval));
    return String(f.engine) === '5' ? 10 : 1;
  };
  const finestFeed = () => selected().reduce((best, f) => (!best || feedStep(f) < feedStep(best) ? f : best), null);
  const baseStep = () => { const f = finestFeed(); return f ? feedStep(f) : 10; };
  const lastDataTime = (list) => {
    let end = 0;
    for (const f of list) end = Math.max(end, meta(f).end || num(f.time) || 0);
    return end || Math.floor(Date.now() / 1000);
  };
  const firstDataTime = (list) => {
    let start = Infinity;
    for (const f of list) { const s = meta(f).start; if (s > 0) start = Math.min(start, s); }
    return Number.isFinite(start) ? start : 0;
  };

  /** Fills start_time/end_time/interval from getmeta for feeds the list did not describe. */
  async function ensureMeta(list) {
    const missing = list.filter((f) => !hasMeta(f) && !f.metaTried);
    await Promise.all(missing.map(async (f) => {
      f.metaTried = true;
      try {
        const m = await get('feed/getmeta.json', { id: f.id });
        if (m && typeof m === 'object') {
          f.start_time = m.start_time;
          f.end_time = m.end_time;
          if (m.interval !== undefined) f.interval = m.interval;
        }
      } catch { /* a feed without meta is graphed with defaults */ }
    }));
  }

  function defaultRange() {
    const list = selected();
    const end = lastDataTime(list);
    const first = firstDataTime(list);
    const start = first > 0 && first < end && end - first < DAY ? first : end - DAY;
    return [start, end];
  }

  await ensureMeta(selected());
  if (!(state.end > state.start)) [state.start, state.end] = defaultRange();

  // ---- the page ----------------------------------------------------------------------------
  const chartEl = h('div', {
    id: 'chart', role: 'figure', tabindex: 0, 'aria-describedby': 'graph-help',
  });
  const statsBody = h('tbody');
  const statsTable = h('table', { id: 'stats' },
    h('caption.muted', 'Statistics of the visible range'),
    h('thead', h('tr',
      h('th', { scope: 'col' }, 'Feed'),
      h('th.num', { scope: 'col' }, 'Min'),
      h('th.num', { scope: 'col' }, 'Max'),
      h('th.num', { scope: 'col' }, 'Mean'),
      h('th.num', { scope: 'col' }, 'Total'))),
    statsBody);

  const btn = (label, onclick, attrs = {}) => h('button', { type: 'button', onclick, ...attrs }, label);
  const presetGroup = h('div.graph-group', { role: 'group', 'aria-label': 'Range' },
    PRESETS.map(([label, span]) => btn(label, () => preset(span))));
  const navGroup = h('div.graph-group', { role: 'group', 'aria-label': 'Zoom and pan' },
    btn('←', () => pan(-0.5), { 'aria-label': 'Pan left', title: 'Pan left' }),
    btn('Zoom in', () => zoom(0.5)),
    btn('Zoom out', () => zoom(2)),
    btn('→', () => pan(0.5), { 'aria-label': 'Pan right', title: 'Pan right' }));

  const avgBox = h('input', { type: 'checkbox', id: 'graph-avg', checked: state.avg });
  const modeSel = h('select', { id: 'graph-mode' }, MODES.map((m) => h('option', { value: m }, m)));
  modeSel.value = state.mode;
  const deltaBox = h('input', { type: 'checkbox', id: 'graph-delta', checked: state.delta });
  avgBox.addEventListener('change', () => { state.avg = avgBox.checked; changed(); });
  deltaBox.addEventListener('change', () => { state.delta = deltaBox.checked; changed(); });
  modeSel.addEventListener('change', () => {
    const was = state.mode;
    state.mode = modeSel.value;
    // Bars of cumulative energy feeds only make sense as per-period differences.
    if (was === 'none' && state.mode !== 'none' && !state.delta
        && selected().length && selected().every((f) => isCumulative(f.unit))) {
      state.delta = true;
      deltaBox.checked = true;
    }
    changed();
  });
  const optGroup = h('div.graph-group', { role: 'group', 'aria-label': 'Options' },
    h('span.graph-check', avgBox, h('label', { for: 'graph-avg' }, 'Average')),
    h('span.graph-check', h('label', { for: 'graph-mode' }, 'Bars'), modeSel),
    h('span.graph-check', deltaBox, h('label', { for: 'graph-delta' }, 'Delta')));

  // Feed picker: the user's feeds by tag, a checkbox each and the axis it goes on.
  const picker = h('details.graph-picker.card');
  picker.open = !(window.innerWidth < 700 && hadFeeds);
  const pickerCount = h('span.muted');
  picker.append(h('summary', 'Feeds ', pickerCount));
  const groups = new Map();
  for (const f of feeds) {
    const tag = String(f.tag || '').trim();
    if (!groups.has(tag)) groups.set(tag, []);
    groups.get(tag).push(f);
  }
  const boxes = new Map();
  const axisSels = new Map();
  for (const [tag, list] of groups) {
    const fs = h('fieldset', h('legend', tag || 'No tag'));
    for (const f of list) {
      const id = `graph-feed-${f.id}`;
      const box = h('input', { type: 'checkbox', id, checked: state.feeds.includes(f.id) });
      const axis = h('select', { 'aria-label': `Axis for ${f.name}`, title: 'Axis' },
        h('option', { value: 'left' }, 'Left'), h('option', { value: 'right' }, 'Right'));
      axis.value = state.right.has(f.id) ? 'right' : 'left';
      axis.disabled = !box.checked;
      box.addEventListener('change', () => {
        if (box.checked) { if (!state.feeds.includes(f.id)) state.feeds.push(f.id); } else {
          state.feeds = state.feeds.filter((x) => x !== f.id);
          state.right.delete(f.id);
          axis.value = 'left';
        }
        axis.disabled = !box.checked;
        feedsChanged();
      });
      axis.addEventListener('change', () => {
        if (axis.value === 'right') state.right.add(f.id); else state.right.delete(f.id);
        changed();
      });
      boxes.set(f.id, box);
      axisSels.set(f.id, axis);
      fs.append(h('div.graph-feed', box,
        h('label', { for: id }, f.name, f.unit ? h('span.muted', ` ${f.unit}`) : null), axis));
    }
    picker.append(fs);
  }

  const help = h('p.legend-note', { id: 'graph-help' },
    'Drag across the plot to zoom in, shift-drag or swipe to pan, use the mouse wheel or pinch to zoom, '
    + 'double-click to zoom out. With the chart focused: ← and → pan, + and − zoom. Times are in ', zoneName, '.');

  main.append(h('div.graph',
    picker,
    h('section.graph-main', { 'aria-label': 'Graph' },
      h('div.graph-controls', presetGroup, navGroup, optGroup),
      chartEl,
      help,
      h('div.table-wrap', statsTable),
      h('p.legend-note', 'Mean is over the points drawn. Total: for delta or bars, the sum; for power '
        + '(W, kW), the energy in kWh; for a cumulative kWh or Wh feed, the change over the range.'))));
  // The status line sits under the controls.
  main.querySelector('.graph-controls').after(status);

  // ---- address -----------------------------------------------------------------------------
  function writeUrl() {
    const parts = [`feeds=${state.feeds.map(encodeURIComponent).join(',')}`];
    const right = state.feeds.filter((id) => state.right.has(id));
    if (right.length) parts.push(`right=${right.map(encodeURIComponent).join(',')}`);
    parts.push(`start=${state.start}`, `end=${state.end}`);
    if (!state.avg) parts.push('avg=0');
    if (state.mode !== 'none') parts.push(`mode=${state.mode}`);
    if (state.delta) parts.push('delta=1');
    history.replaceState(history.state, '', `${location.pathname}?${parts.join('&')}`);
  }

  // ---- resolution --------------------------------------------------------------------------
  function plotWidth() {
    if (u && u.bbox && u.bbox.width > 0) return Math.max(50, Math.round(u.bbox.width / uPlot.pxRatio));
    const right = selected().some((f) => state.right.has(f.id));
    return Math.max(50, (chartEl.clientWidth || 600) - (right ? 130 : 70));
  }

  function pickInterval(span) {
    const base = baseStep();
    const target = Math.max(base, Math.ceil(span / plotWidth()), Math.ceil(span / (MAX_POINTS - 2)));
    const rung = LADDER.find((v) => v >= target && v % base === 0);
    if (rung) return rung;
    if (target > DAY && HOUR % base === 0) return Math.ceil(target / HOUR) * HOUR;
    return Math.ceil(target / base) * base;
  }

  // ---- fetching and drawing ----------------------------------------------------------------
  function signature() {
    return `${state.mode}|${state.feeds.map((id) => `${id}${state.right.has(id) ? 'R' : 'L'}`).join(',')}`;
  }

  /** Draws the current state; every caller goes through here, so no failure goes unshown. */
  function refresh() {
    return redraw().catch((e) => {
      chartEl.removeAttribute('aria-busy');
      status.classList.add('error');
      status.textContent = `Could not draw: ${e.message}`;
    });
  }

  async function redraw() {
    const my = ++seq;
    const list = selected();
    if (!list.length) {
      chartEl.removeAttribute('aria-busy');
      destroyChart();
      clear(chartEl, h('p.muted.graph-empty', 'Choose one or more feeds to draw.'));
      chartEl.setAttribute('aria-label', 'No feed chosen');
      clear(statsBody);
      status.classList.remove('error');
      status.textContent = '';
      return;
    }
    await ensureMeta(list);
    if (my !== seq || gone) return;
    const bars = state.mode !== 'none';
    const params = {
      ids: list.map((f) => f.id).join(','),
      average: state.avg ? 1 : 0,
      skipmissing: 0,
      limitinterval: 0,
    };
    // Delta differences cumulative feeds (kWh, Wh) only, so a power feed beside them stays
    // as it is; with no cumulative feed chosen it applies to all.
    if (state.delta) params.delta = list.map((f) => (deltaFor(f, list) ? 1 : 0)).join(',');
    let interval;
    if (bars) {
      interval = state.mode;
      params.start = state.start * 1000;
      params.end = state.end * 1000;
    } else {
      interval = pickInterval(state.end - state.start);
      // Samples are taken on the finest feed's own grid, so regular data is hit.
      const phase = meta(finestFeed()).start || 0;
      const qs = phase + Math.floor((state.start - phase) / interval) * interval;
      const qe = phase + Math.ceil((state.end - phase) / interval) * interval;
      params.start = qs * 1000;
      params.end = Math.max(qe, qs + interval) * 1000;
    }
    params.interval = interval;
    chartEl.setAttribute('aria-busy', 'true');
    let reply;
    try {
      reply = await get('feed/data.json', params);
    } catch (e) {
      if (my !== seq || gone) return;
      chartEl.removeAttribute('aria-busy');
      status.classList.add('error');
      status.textContent = `Could not load the data: ${e.message}`;
      toast(e.message, 'error');
      return;
    }
    if (my !== seq || gone) return;
    chartEl.removeAttribute('aria-busy');
    const data = toData(reply, list);
    lastInterval = interval;
    draw(data, list);
    afterPaint(() => {
      if (my !== seq || gone || !u) return;
      drawn(data, list, interval);
    });
  }

  /** The data.json reply (`ids=` form) as uPlot's [xs, ys1, ys2, ...], times in seconds. */
  function toData(reply, list) {
    const items = Array.isArray(reply) ? reply : (reply && typeof reply === 'object' ? Object.values(reply) : []);
    const rowsById = new Map();
    for (const item of items) {
      if (item && item.feedid !== undefined) rowsById.set(String(item.feedid), Array.isArray(item.data) ? item.data : []);
    }
    const tables = list.map((f) => {
      const rows = rowsById.get(f.id) || [];
      const xs = new Array(rows.length);
      const ys = new Array(rows.length);
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i];
        xs[i] = Math.round(r[0] / 1000);
        const v = r[1] === null || r[1] === undefined ? NaN : Number(r[1]);
        ys[i] = Number.isFinite(v) ? v : null;
      }
      return [xs, ys];
    });
    const x0 = tables[0][0];
    const aligned = tables.every((t) => t[0].length === x0.length && t[0].every((x, i) => x === x0[i]));
    if (aligned) return [x0, ...tables.map((t) => t[1])];
    return uPlot.join(tables);
  }

  function barPeriod(xs) {
    if (xs.length < 2) return PERIOD[state.mode] || DAY;
    const gaps = [];
    for (let i = 1; i < xs.length; i++) gaps.push(xs[i] - xs[i - 1]);
    gaps.sort((a, b) => a - b);
    return gaps[gaps.length >> 1] || PERIOD[state.mode] || DAY;
  }

  function visibleRange(data) {
    if (state.mode === 'none') return [state.start, state.end];
    const xs = data[0];
    if (!xs.length) return [state.start, state.end];
    const p = barPeriod(xs);
    return [xs[0] - p / 2, xs[xs.length - 1] + p / 2];
  }

  function draw(data, list) {
    const [x0, x1] = visibleRange(data);
    const sig = signature();
    if (!u || sig !== chartSig) {
      destroyChart();
      clear(chartEl);
      u = new uPlot(chartOptions(list), data, chartEl);
      chartSig = sig;
      u.setScale('x', { min: x0, max: x1 });
    } else {
      u.batch(() => {
        u.setData(data, false);
        u.setScale('x', { min: x0, max: x1 });
      });
    }
  }

  function afterPaint(fn) {
    let done = false;
    const once = () => { if (!done) { done = true; fn(); } };
    requestAnimationFrame(once);
    setTimeout(once, 250); // a hidden tab gets no animation frames
  }

  /** Everything that follows a finished draw: the test hooks, statistics, labels. */
  function drawn(data, list, interval) {
    const xmin = u.scales.x.min;
    const xmax = u.scales.x.max;
    let points = 0;
    const xs = data[0];
    for (let s = 1; s < data.length; s++) {
      const ys = data[s];
      for (let i = 0; i < xs.length; i++) if (ys[i] != null && xs[i] >= xmin && xs[i] <= xmax) points++;
    }
    draws++;
    chartEl.dataset.points = String(points);
    chartEl.dataset.xmin = String(Math.round(xmin));
    chartEl.dataset.xmax = String(Math.round(xmax));
    chartEl.dataset.interval = String(interval);
    chartEl.dataset.draws = String(draws);
    if (!performance.getEntriesByName(MARK_FIRST).length) performance.mark(MARK_FIRST);
    if (pendingMeasure) {
      pendingMeasure = false;
      try { performance.measure(MEASURE, MARK_START); } catch { /* no start mark */ }
    }
    updateStats(data, list, xmin, xmax, interval);
    updateLabels(list, points, interval);
  }

  function updateLabels(list, points, interval) {
    const bars = state.mode !== 'none';
    const anyRight = list.some((f) => state.right.has(f.id));
    const names = list.map((f) => {
      const bits = [f.unit, anyRight ? `${state.right.has(f.id) ? 'right' : 'left'} axis` : ''].filter(Boolean);
      return bits.length ? `${f.name} (${bits.join(', ')})` : f.name;
    });
    const what = bars ? `${MODE_WORD[state.mode]} bars` : 'Line graph';
    const how = [state.avg ? 'averaged' : '', state.delta ? 'differences per interval' : ''].filter(Boolean).join(', ');
    chartEl.setAttribute('aria-label', `${what} of ${names.join(' and ')} from ${fmtShort.format(state.start * 1000)} `
      + `to ${fmtShort.format(state.end * 1000)}${how ? `, ${how}` : ''}`);
    status.classList.remove('error');
    const step = bars ? MODE_WORD[state.mode] : `Every ${fmtInterval(interval)}`;
    let text = `${fmtShort.format(state.start * 1000)} – ${fmtShort.format(state.end * 1000)} · ${step} · `
      + `${points} ${bars ? 'bars' : 'points'}`;
    if (!points) text += state.avg || bars ? ' · no data in this range' : ' · no data here; try Average';
    status.textContent = text;
    pickerCount.textContent = `(${list.length} chosen)`;
  }

  function deltaFor(f, list) {
    if (!state.delta) return false;
    const cumulative = (x) => isCumulative(x.unit);
    return cumulative(f) || !list.some(cumulative);
  }

  function updateStats(data, list, xmin, xmax, interval) {
    const xs = data[0];
    const bars = state.mode !== 'none';
    const step = bars ? barPeriod(xs) : interval;
    const rows = list.map((f, k) => {
      const ys = data[k + 1] || [];
      const unit = String(f.unit || '').trim();
      let n = 0; let sum = 0; let min = Infinity; let max = -Infinity;
      let first = null; let last = null; let energy = 0;
      for (let i = 0; i < xs.length; i++) {
        const x = xs[i];
        const v = ys[i];
        if (v == null || x < xmin || x > xmax) continue;
        n++; sum += v;
        if (v < min) min = v;
        if (v > max) max = v;
        if (first === null) first = v;
        last = v;
        const next = i + 1 < xs.length ? xs[i + 1] : x + step;
        energy += v * Math.max(0, Math.min(next, xmax) - Math.max(x, xmin));
      }
      let total = null; let totalUnit = unit; let kind = '';
      if (n) {
        if (deltaFor(f, list)) { total = sum; kind = 'sum'; } else if (/^w$/i.test(unit) && (!bars || state.avg)) {
          total = energy / 3.6e6; totalUnit = 'kWh'; kind = 'energy';
        } else if (/^kw$/i.test(unit) && (!bars || state.avg)) {
          total = energy / 3600; totalUnit = 'kWh'; kind = 'energy';
        } else if (isCumulative(unit) && !bars) { total = last - first; kind = 'change'; }
      }
      const swatch = h('span.graph-swatch', { 'aria-hidden': 'true' });
      swatch.style.background = COLOURS[k % COLOURS.length];
      return h('tr', { dataset: { feed: f.id } },
        h('th', { scope: 'row' }, swatch, f.name),
        h('td.num', n ? withUnit(min, unit) : '—'),
        h('td.num', n ? withUnit(max, unit) : '—'),
        h('td.num', n ? withUnit(sum / n, unit) : '—'),
        h('td.num', total === null ? '—' : [withUnit(total, totalUnit), h('span.muted', ` ${kind}`)]));
    });
    clear(statsBody, rows);
  }

  function chartHeight(width) {
    return Math.round(clamp(width * 0.45, 240, 440));
  }

  function yAxisSize(u2, values, axisIdx) {
    let longest = 0;
    for (const v of values || []) longest = Math.max(longest, String(v).length);
    const label = u2.axes[axisIdx].label ? 22 : 0;
    return Math.ceil(18 + longest * 7.5 + label);
  }

  function chartOptions(list) {
    const bars = state.mode !== 'none';
    const n = list.length;
    const left = list.filter((f) => !state.right.has(f.id));
    const right = list.filter((f) => state.right.has(f.id));
    const units = (fs) => [...new Set(fs.map((f) => String(f.unit || '').trim()).filter(Boolean))].join(', ');
    const fg = '#1b1f1c';
    const grid = { stroke: '#e3e7e4', width: 1 };
    const xValue = (self, v) => {
      if (v == null) return '—';
      const t = v * 1000;
      if (!bars) return (lastInterval || 60) < 60 ? fmtLong.format(t) : fmtShort.format(t);
      return state.mode === 'monthly' ? fmtMonth.format(t) : fmtDay.format(t);
    };
    const series = [{ label: 'Time', value: xValue }];
    list.forEach((f, k) => {
      const colour = COLOURS[k % COLOURS.length];
      const unit = String(f.unit || '').trim();
      const s = {
        label: unit ? `${f.name} (${unit})` : String(f.name),
        scale: state.right.has(f.id) ? 'y2' : 'y',
        stroke: colour,
        width: 1.5,
        value: (self, v) => withUnit(v, unit),
      };
      if (bars) {
        s.fill = `${colour}b3`;
        s.width = 1;
        s.points = { show: false };
        s.paths = uPlot.paths.bars({
          size: [0.8, Infinity],
          disp: {
            x0: {
              unit: 1,
              values: (self) => {
                const xs = self.data[0];
                const p = barPeriod(xs);
                return xs.map((x) => x - 0.4 * p + (k * 0.8 * p) / n);
              },
            },
            size: { unit: 1, values: (self) => [(0.8 * barPeriod(self.data[0])) / n] },
          },
        });
      } else {
        s.spanGaps = true;
      }
      series.push(s);
    });
    const yRange = bars
      ? (self, min, max) => (min == null || !Number.isFinite(min) || !Number.isFinite(max)
        ? [0, 1] : uPlot.rangeNum(Math.min(0, min), Math.max(0, max), 0.1, true))
      : undefined;
    const scales = { x: { time: true } };
    const axes = [{ stroke: fg, grid, ticks: grid }];
    if (left.length) {
      scales.y = yRange ? { range: yRange } : {};
      axes.push({ scale: 'y', side: 3, stroke: fg, grid, ticks: grid, label: units(left) || undefined, size: yAxisSize });
    }
    if (right.length) {
      scales.y2 = yRange ? { range: yRange } : {};
      axes.push({
        scale: 'y2', side: 1, stroke: fg, grid: left.length ? { show: false } : grid, ticks: grid,
        label: units(right) || undefined, size: yAxisSize,
      });
    }
    const width = Math.max(200, Math.floor(chartEl.clientWidth || 600));
    return {
      width,
      height: chartHeight(width),
      tzDate: tz ? (ts) => uPlot.tzDate(new Date(ts * 1000), tz) : undefined,
      series,
      scales,
      axes,
      legend: { live: true },
      plugins: [tooltip(list.map((_, k) => COLOURS[k % COLOURS.length]))],
      cursor: {
        drag: { x: true, y: false, setScale: false },
        bind: {
          dblclick: () => (e) => { if (e.button === 0) zoom(2); return null; },
        },
      },
      hooks: {
        setSelect: [(self) => {
          const sel = self.select;
          if (sel.width < 3) return;
          const a = self.posToVal(sel.left, 'x');
          const b = self.posToVal(sel.left + sel.width, 'x');
          self.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          setRange(a, b);
        }],
      },
    };
  }

  /** The values under the cursor, next to it (the legend below says the same, further away). */
  function tooltip(colours) {
    let tip;
    return {
      hooks: {
        init: (self) => {
          tip = h('div.graph-tip', { 'aria-hidden': 'true' });
          tip.hidden = true;
          self.over.append(tip);
        },
        setCursor: (self) => {
          const { left, top, idx } = self.cursor;
          if (idx == null || left == null || left < 0) {
            tip.hidden = true;
            return;
          }
          const rows = [h('div.graph-tip-time', self.series[0].value(self, self.data[0][idx]))];
          self.series.forEach((sr, i) => {
            if (i === 0 || sr.show === false) return;
            const swatch = h('span.graph-tip-swatch');
            swatch.style.background = colours[i - 1];
            rows.push(h('div', swatch, `${sr.label}: ${sr.value(self, self.data[i][idx])}`));
          });
          clear(tip, rows);
          tip.hidden = false;
          const room = self.over.clientWidth;
          const x = left + 14 + tip.offsetWidth > room ? left - 14 - tip.offsetWidth : left + 14;
          const y = Math.max(0, top - tip.offsetHeight - 10);
          tip.style.transform = `translate(${Math.max(0, x)}px, ${y}px)`;
        },
      },
    };
  }

  function destroyChart() {
    if (u) {
      u.destroy();
      u = null;
      chartSig = '';
    }
  }

  // ---- user actions ------------------------------------------------------------------------
  /** Sets the range (and the axis, with the data already there) without fetching. */
  function preview(a, b) {
    if (!(b > a) || !Number.isFinite(a) || !Number.isFinite(b)) return false;
    const minSpan = Math.max(60, 10 * baseStep());
    let span = clamp(b - a, minSpan, MAX_SPAN);
    const centre = (a + b) / 2;
    a = centre - span / 2;
    span = Math.round(span);
    state.start = Math.round(a);
    state.end = state.start + span;
    writeUrl();
    if (u) u.setScale('x', { min: state.start, max: state.end });
    return true;
  }

  /** A zoom, pan or preset the user asked for: mark it and fetch at the new resolution. */
  function commit() {
    clearTimeout(wheelTimer);
    performance.mark(MARK_START);
    pendingMeasure = true;
    refresh();
  }

  function setRange(a, b) {
    if (preview(a, b)) commit();
  }

  function zoom(factor, anchor = (state.start + state.end) / 2) {
    setRange(anchor - (anchor - state.start) * factor, anchor + (state.end - anchor) * factor);
  }

  function pan(fraction) {
    const d = (state.end - state.start) * fraction;
    setRange(state.start + d, state.end + d);
  }

  function preset(span) {
    const list = selected();
    const end = lastDataTime(list);
    if (span) {
      setRange(end - span, end);
      return;
    }
    const first = firstDataTime(list);
    if (first > 0 && first < end) setRange(first, end);
    else setRange(end - DAY, end);
  }

  /** Averaging, bars, delta or an axis changed: same range, new request. */
  function changed() {
    writeUrl();
    refresh();
  }

  function feedsChanged() {
    pickerCount.textContent = `(${state.feeds.length} chosen)`;
    writeUrl();
    refresh();
  }

  // Mouse wheel: zoom around the pointer at once, fetch when the wheel rests.
  function onWheel(e) {
    if (!u || !e.target.closest('.u-over')) return;
    e.preventDefault();
    const r = u.over.getBoundingClientRect();
    const span = state.end - state.start;
    let dx = e.deltaX;
    let dy = e.deltaY;
    const scale = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? r.height : 1;
    dx *= scale; dy *= scale;
    if (Math.abs(dx) > Math.abs(dy)) {
      const d = (dx / Math.max(1, r.width)) * span;
      preview(state.start + d, state.end + d);
    } else {
      const anchor = state.start + clamp((e.clientX - r.left) / Math.max(1, r.width), 0, 1) * span;
      const factor = clamp(Math.exp(dy * 0.0015), 0.25, 4);
      preview(anchor - (anchor - state.start) * factor, anchor + (state.end - anchor) * factor);
    }
    clearTimeout(wheelTimer);
    wheelTimer = setTimeout(commit, WHEEL_WAIT);
  }

  // Shift-drag pans; plain drags stay uPlot's selection (zoom).
  function onMouseDown(e) {
    if (!u || e.button !== 0 || !e.shiftKey || !e.target.closest('.u-over')) return;
    e.stopPropagation();
    e.preventDefault();
    const x0 = e.clientX;
    const s0 = state.start;
    const e0 = state.end;
    const w = Math.max(1, u.over.getBoundingClientRect().width);
    let moved = false;
    const move = (ev) => {
      const d = ((ev.clientX - x0) / w) * (e0 - s0);
      if (Math.abs(ev.clientX - x0) > 2) moved = true;
      preview(s0 - d, e0 - d);
    };
    const up = () => {
      endDrag();
      if (moved) commit();
    };
    endDrag = () => {
      window.removeEventListener('mousemove', move);
      window.removeEventListener('mouseup', up);
      endDrag = null;
    };
    window.addEventListener('mousemove', move);
    window.addEventListener('mouseup', up);
  }

  // Touch: one finger pans, two pinch-zoom (vertical page scrolling is left to the browser).
  function touchStart(e) {
    if (!u || !e.target.closest('.u-over')) return;
    const r = u.over.getBoundingClientRect();
    const t = e.touches;
    const base = { s0: state.start, e0: state.end, left: r.left, w: Math.max(1, r.width), moved: touch ? touch.moved : false };
    if (t.length === 1) touch = { ...base, mode: 'pan', x0: t[0].clientX };
    else if (t.length === 2) {
      const mid = (t[0].clientX + t[1].clientX) / 2;
      touch = {
        ...base,
        mode: 'pinch',
        d0: Math.max(10, Math.abs(t[0].clientX - t[1].clientX)),
        anchor: state.start + clamp((mid - r.left) / base.w, 0, 1) * (state.end - state.start),
      };
    }
  }
  function touchMove(e) {
    if (!touch) return;
    const t = e.touches;
    if (touch.mode === 'pan' && t.length === 1) {
      const dx = t[0].clientX - touch.x0;
      if (Math.abs(dx) < 4 && !touch.moved) return;
      touch.moved = true;
      if (e.cancelable) e.preventDefault();
      const d = (dx / touch.w) * (touch.e0 - touch.s0);
      preview(touch.s0 - d, touch.e0 - d);
    } else if (touch.mode === 'pinch' && t.length === 2) {
      touch.moved = true;
      if (e.cancelable) e.preventDefault();
      const factor = touch.d0 / Math.max(10, Math.abs(t[0].clientX - t[1].clientX));
      const { anchor, s0, e0 } = touch;
      preview(anchor - (anchor - s0) * factor, anchor + (e0 - anchor) * factor);
    }
  }
  function touchEnd(e) {
    if (!touch) return;
    if (e.touches.length === 0) {
      const { moved } = touch;
      touch = null;
      if (moved) commit();
    } else if (e.touches.length === 1) {
      // From pinch to one finger: carry on as a pan from here.
      touch = { s0: state.start, e0: state.end, left: touch.left, w: touch.w, moved: touch.moved, mode: 'pan', x0: e.touches[0].clientX };
    }
  }

  function onKey(e) {
    if (e.target !== chartEl || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === 'ArrowLeft') pan(-0.25);
    else if (e.key === 'ArrowRight') pan(0.25);
    else if (e.key === '+' || e.key === '=') zoom(0.5);
    else if (e.key === '-' || e.key === '_') zoom(2);
    else return;
    e.preventDefault();
  }

  chartEl.addEventListener('wheel', onWheel, { passive: false });
  chartEl.addEventListener('mousedown', onMouseDown, true);
  chartEl.addEventListener('touchstart', touchStart, { passive: true });
  chartEl.addEventListener('touchmove', touchMove, { passive: false });
  chartEl.addEventListener('touchend', touchEnd);
  chartEl.addEventListener('touchcancel', touchEnd);
  chartEl.addEventListener('keydown', onKey);

  // The chart follows the width of its column; a much wider or narrower plot refetches.
  const resizer = new ResizeObserver((entries) => {
    const w = Math.floor(entries[entries.length - 1].contentRect.width);
    if (!u || !w || w === u.width) return;
    u.setSize({ width: w, height: chartHeight(w) });
    if (state.mode !== 'none') return;
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (u && pickInterval(state.end - state.start) !== lastInterval) refresh();
    }, 250);
  });
  resizer.observe(chartEl);

  writeUrl();
  pickerCount.textContent = `(${state.feeds.length} chosen)`;
  refresh();

  return () => {
    gone = true;
    seq++;
    clearTimeout(wheelTimer);
    clearTimeout(resizeTimer);
    if (endDrag) endDrag();
    resizer.disconnect();
    destroyChart();
  };
}
