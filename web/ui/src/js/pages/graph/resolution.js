// Data is fetched at about one point per pixel of the plot (feed/data.json with a matching
// interval), so a year of 10 s data costs no more than an hour of it, and every zoom or pan
// fetches again at the new resolution. This module knows each feed's first and last time and
// its step, picks the interval from them, builds the request and turns the reply into
// uPlot's columns.

import uPlot from '/ui/vendor/uPlot.esm.js';
import { get } from '../../api.js';
import { isCumulative } from '../../feedmeta.js';
import { DAY, HOUR, num } from './state.js';

// ---- the feeds' times and steps ------------------------------------------------------------
// The feed list (meta=1) usually gives them; a feed it leaves undescribed is asked about
// once, on its own.

export const meta = (f) => ({
  start: num(f.start_time) || 0,
  end: num(f.end_time) || 0,
  interval: num(f.interval) || 0,
});

const hasMeta = (f) => f.start_time !== undefined && f.end_time !== undefined;

/** The chosen feeds, in the order they were chosen. */
export const selectedFeeds = (state, byId) => state.feeds.map((id) => byId.get(id)).filter(Boolean);

/** The feed's own step in seconds (PHPFina: its interval; others: about their spacing). */
export function feedStep(f) {
  const m = meta(f);
  if (m.interval > 0) return Math.max(1, Math.round(m.interval));
  return String(f.engine) === '5' ? 10 : 1;
}

export const finestFeed = (list) => list.reduce((best, f) => (!best || feedStep(f) < feedStep(best) ? f : best), null);

export function baseStep(list) {
  const f = finestFeed(list);
  return f ? feedStep(f) : 10;
}

export function lastDataTime(list) {
  let end = 0;
  for (const f of list) end = Math.max(end, meta(f).end || num(f.time) || 0);
  return end || Math.floor(Date.now() / 1000);
}

export function firstDataTime(list) {
  let start = Infinity;
  for (const f of list) { const s = meta(f).start; if (s > 0) start = Math.min(start, s); }
  return Number.isFinite(start) ? start : 0;
}

/** Fills start_time/end_time/interval from getmeta for feeds the list did not describe. */
export async function ensureMeta(list) {
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

// A feed with less than a day of data is shown whole rather than with empty space before it.
export function defaultRange(list) {
  const end = lastDataTime(list);
  const first = firstDataTime(list);
  const start = first > 0 && first < end && end - first < DAY ? first : end - DAY;
  return [start, end];
}

/** Whether Delta applies to feed `f` among `list` (see dataParams). */
export function deltaFor(f, list, delta) {
  if (!delta) return false;
  const cumulative = (x) => isCumulative(x.unit);
  return cumulative(f) || !list.some(cumulative);
}

// ---- the request ---------------------------------------------------------------------------

const MAX_POINTS = 20000; // the server refuses requests for more
// Request intervals are picked from this ladder (those that are multiples of the feed interval),
// so that zooming lands on round steps and regular sample cadences keep being hit.
const LADDER = [1, 2, 5, 10, 15, 20, 30, 40, 60, 90, 120, 180, 240, 300, 360, 480, 600, 720, 900,
  1200, 1800, 2400, 3600, 5400, 7200, 10800, 14400, 21600, 28800, 43200, 86400];

/** Width of the plotting area in CSS pixels; before the first chart, a guess from its box. */
export function plotWidth(u, chartEl, rightAxis) {
  if (u && u.bbox && u.bbox.width > 0) return Math.max(50, Math.round(u.bbox.width / uPlot.pxRatio));
  return Math.max(50, (chartEl.clientWidth || 600) - (rightAxis ? 130 : 70));
}

/** The request interval for `span` seconds over `width` pixels of feeds stepping `base` seconds. */
export function pickInterval(span, base, width) {
  const target = Math.max(base, Math.ceil(span / width), Math.ceil(span / (MAX_POINTS - 2)));
  const rung = LADDER.find((v) => v >= target && v % base === 0);
  if (rung) return rung;
  if (target > DAY && HOUR % base === 0) return Math.ceil(target / HOUR) * HOUR;
  return Math.ceil(target / base) * base;
}

/** The interval a line graph of the chosen `list` would be fetched at now. */
export function lineInterval(state, list, u, chartEl) {
  const base = baseStep(list);
  const width = plotWidth(u, chartEl, list.some((f) => state.right.has(f.id)));
  return pickInterval(state.end - state.start, base, width);
}

/** feed/data.json parameters for `list` at `interval` (seconds, or the bar mode's name). */
export function dataParams(state, list, interval) {
  const params = {
    ids: list.map((f) => f.id).join(','),
    average: state.avg ? 1 : 0,
    skipmissing: 0,
    limitinterval: 0,
  };
  // Delta differences cumulative feeds (kWh, Wh) only, so a power feed beside them stays
  // as it is; with no cumulative feed chosen it applies to all.
  if (state.delta) params.delta = list.map((f) => (deltaFor(f, list, state.delta) ? 1 : 0)).join(',');
  if (state.mode !== 'none') {
    params.start = state.start * 1000;
    params.end = state.end * 1000;
  } else {
    // Samples are taken on the finest feed's own grid, so regular data is hit.
    const phase = meta(finestFeed(list)).start || 0;
    const qs = phase + Math.floor((state.start - phase) / interval) * interval;
    const qe = phase + Math.ceil((state.end - phase) / interval) * interval;
    params.start = qs * 1000;
    params.end = Math.max(qe, qs + interval) * 1000;
  }
  params.interval = interval;
  return params;
}

// ---- the reply -----------------------------------------------------------------------------

/** The data.json reply (`ids=` form) as uPlot's [xs, ys1, ys2, ...], times in seconds. */
export function toData(reply, list) {
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
  // Feeds fetched together usually share their times; uPlot.join is only needed when they don't.
  const x0 = tables[0][0];
  const aligned = tables.every((t) => t[0].length === x0.length && t[0].every((x, i) => x === x0[i]));
  if (aligned) return [x0, ...tables.map((t) => t[1])];
  return uPlot.join(tables);
}

// What a bar stands for when there are too few bars to measure their spacing.
const PERIOD = { daily: DAY, weekly: 7 * DAY, monthly: 30.44 * DAY };

/** Seconds between bars: the median gap, as months and DST days are not all alike. */
export function barPeriod(xs, mode) {
  if (xs.length < 2) return PERIOD[mode] || DAY;
  const gaps = [];
  for (let i = 1; i < xs.length; i++) gaps.push(xs[i] - xs[i - 1]);
  gaps.sort((a, b) => a - b);
  return gaps[gaps.length >> 1] || PERIOD[mode] || DAY;
}

/** The x range to show: the asked range, or for bars, the bars themselves with half a bar each side. */
export function visibleRange(data, state) {
  if (state.mode === 'none') return [state.start, state.end];
  const xs = data[0];
  if (!xs.length) return [state.start, state.end];
  const p = barPeriod(xs, state.mode);
  return [xs[0] - p / 2, xs[xs.length - 1] + p / 2];
}
