// The graph: one or more feeds on a time axis, drawn with uPlot. Data is fetched at about one
// point per pixel of the plot, so a year of 10 s data costs no more than an hour of it, and
// every zoom or pan fetches again at the new resolution. The whole view lives in the address,
// so it can be bookmarked or shared:
//   /app/graph?feeds=1,2&right=2&start=<unix s>&end=<unix s>&avg=0&mode=daily&delta=1
//
// This module builds the page and runs the fetch-and-draw cycle; its parts are in ./graph/:
//   state.js       the address and the state read from it
//   resolution.js  the feeds' times and steps, the request interval, feed/data.json
//                  parameters, reading the reply
//   chart.js       uPlot's options (series, axes, bars, the tooltip) and the time axis's labels
//   timeaxis.js    how times read (ISO order, in the user's zone) and where axis labels go
//   interact.js    zoom and pan: the range actions, wheel, shift-drag, touch, keys
//   controls.js    the buttons, the options and the feed picker
//   stats.js       after a draw: the statistics table, the status line, the aria-label

import uPlot from '/ui/vendor/uPlot.esm.js';
import { h, clear, toast } from '../dom.js';
import { get } from '../api.js';
import { readParams, writeUrl, signature } from './graph/state.js';
import {
  selectedFeeds, ensureMeta, defaultRange, lineInterval, dataParams, toData, visibleRange,
} from './graph/resolution.js';
import { chartOptions, chartHeight } from './graph/chart.js';
import { timeFormats } from './graph/timeaxis.js';
import { navigation, bindGestures, MARK_START } from './graph/interact.js';
import { graphControls, feedPicker } from './graph/controls.js';
import { statsTable, pointsIn, updateStats, describe } from './graph/stats.js';
// Only the modules above use feedmeta.js; named here it is fetched alongside them, where
// otherwise it would wait for one of them to arrive and be read.
import '../feedmeta.js';

// Read by the browser test (tests/browser/ui.mjs) to time the first draw, and each draw that
// follows a zoom or pan (from MARK_START).
const MARK_FIRST = 'ynni:graph:first-draw';
const MEASURE = 'ynni:graph:redraw';

export async function render(main, ctx) {
  const fmt = timeFormats(ctx.user);

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

  const state = readParams(ctx.params, byId);
  const hadFeeds = state.feeds.length > 0;
  if (!hadFeeds) state.feeds = [feeds[0].id];
  const selected = () => selectedFeeds(state, byId);

  await ensureMeta(selected());
  if (!(state.end > state.start)) [state.start, state.end] = defaultRange(selected());

  let chartSig = ''; // what the chart was built for (feeds, axes, mode)
  let seq = 0; // request counter: replies to older requests are dropped
  let draws = 0;
  let resizeTimer = 0;
  let gone = false;

  // ---- the page ----------------------------------------------------------------------------
  const chartEl = h('div', {
    id: 'chart', role: 'figure', tabindex: 0, 'aria-describedby': 'graph-help',
  });
  const stats = statsTable();
  // On a phone the picker would push the chart off screen; it starts closed there unless
  // the address chose no feeds, when picking some is the first thing to do.
  const { picker, pickerCount } = feedPicker(feeds, state, {
    open: !(window.innerWidth < 700 && hadFeeds), changed, feedsChanged,
  });

  // What the modules of ./graph/ share. `u` and `lastInterval` change with each draw and
  // `pendingMeasure` is set by a zoom or pan, so they are read from here, never copied.
  const view = {
    state,
    fmt,
    chartEl,
    status,
    pickerCount,
    selected,
    u: null, // the uPlot instance
    lastInterval: null, // the interval of the data on screen (seconds, or a mode name)
    pendingMeasure: false, // a zoom or pan awaits its draw, to be measured
  };
  const nav = navigation(view, refresh);

  const controls = graphControls(state, nav, { changed, selected });
  const help = h('p.legend-note', { id: 'graph-help' },
    'Drag across the plot to zoom in, shift-drag or swipe to pan, use the mouse wheel or pinch to zoom, '
    + 'double-click to zoom out. With the chart focused: ← and → pan, + and − zoom. Times are in ', fmt.zoneName, '.');

  main.append(h('div.graph',
    picker,
    h('section.graph-main', { 'aria-label': 'Graph' },
      controls,
      chartEl,
      help,
      h('div.table-wrap', stats.table),
      h('p.legend-note', 'Mean is over the points drawn. Total: for delta or bars, the sum; for power '
        + '(W, kW), the energy in kWh; for a cumulative kWh or Wh feed, the change over the range.'))));
  // The status line sits under the controls.
  controls.after(status);

  // ---- fetching and drawing ----------------------------------------------------------------
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
      clear(stats.body);
      status.classList.remove('error');
      status.textContent = '';
      return;
    }
    await ensureMeta(list);
    if (my !== seq || gone) return;
    const interval = state.mode !== 'none' ? state.mode : lineInterval(state, list, view.u, chartEl);
    const params = dataParams(state, list, interval);
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
    view.lastInterval = interval;
    draw(data, list);
    afterPaint(() => {
      if (my !== seq || gone || !view.u) return;
      drawn(data, list, interval);
    });
  }

  // A chart is rebuilt only when its series or axes change; otherwise new data goes into
  // the one there, which is much cheaper while zooming.
  function draw(data, list) {
    const [x0, x1] = visibleRange(data, state);
    const sig = signature(state);
    if (!view.u || sig !== chartSig) {
      destroyChart();
      clear(chartEl);
      view.u = new uPlot(chartOptions(list, view, nav), data, chartEl);
      chartSig = sig;
      view.u.setScale('x', { min: x0, max: x1 });
    } else {
      const { u } = view;
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
    const xmin = view.u.scales.x.min;
    const xmax = view.u.scales.x.max;
    const points = pointsIn(data, xmin, xmax);
    draws++;
    chartEl.dataset.points = String(points);
    chartEl.dataset.xmin = String(Math.round(xmin));
    chartEl.dataset.xmax = String(Math.round(xmax));
    chartEl.dataset.interval = String(interval);
    chartEl.dataset.draws = String(draws);
    if (!performance.getEntriesByName(MARK_FIRST).length) performance.mark(MARK_FIRST);
    if (view.pendingMeasure) {
      view.pendingMeasure = false;
      try { performance.measure(MEASURE, MARK_START); } catch { /* no start mark */ }
    }
    updateStats(stats.body, data, list, xmin, xmax, interval, state);
    describe(view, list, points, interval);
  }

  function destroyChart() {
    if (view.u) {
      view.u.destroy();
      view.u = null;
      chartSig = '';
    }
  }

  /** Averaging, bars, delta or an axis changed: same range, new request. */
  function changed() {
    writeUrl(state);
    refresh();
  }

  function feedsChanged() {
    pickerCount.textContent = `(${state.feeds.length} chosen)`;
    writeUrl(state);
    refresh();
  }

  const endGestures = bindGestures(view, nav);

  // The chart follows the width of its column; a much wider or narrower plot refetches.
  const resizer = new ResizeObserver((entries) => {
    const { u } = view;
    const w = Math.floor(entries[entries.length - 1].contentRect.width);
    if (!u || !w || w === u.width) return;
    u.setSize({ width: w, height: chartHeight(w) });
    if (state.mode !== 'none') return;
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (view.u && lineInterval(state, selected(), view.u, chartEl) !== view.lastInterval) refresh();
    }, 250);
  });
  resizer.observe(chartEl);

  writeUrl(state);
  pickerCount.textContent = `(${state.feeds.length} chosen)`;
  refresh();

  return () => {
    gone = true;
    seq++;
    nav.stop();
    clearTimeout(resizeTimer);
    endGestures();
    resizer.disconnect();
    destroyChart();
  };
}
