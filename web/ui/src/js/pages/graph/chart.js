// uPlot's options for the chosen feeds: a series and a colour each, a left and/or right y
// axis, bars for the daily/weekly/monthly modes, and the tooltip; and the date formats it and
// the page show times with, in the user's zone. Drag-to-zoom and double-click are wired to
// the page's range actions here because uPlot owns those events.

import uPlot from '/ui/vendor/uPlot.esm.js';
import { h, clear, fmtValue } from '../../dom.js';
import { clamp } from './state.js';
import { barPeriod } from './resolution.js';

const COLOURS = ['#1d6f42', '#2563eb', '#c2410c', '#9333ea', '#0e7490', '#b91c1c', '#4d7c0f', '#a16207'];

/** The colour of the k-th chosen feed, the same in the chart, tooltip and statistics. */
export const colourOf = (k) => COLOURS[k % COLOURS.length];

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

/** The zone named in the user's account (`tz`, or null) and date formats in it. */
export function timeFormats(user) {
  const tz = validZone(user && user.timezone);
  const zoneOpt = tz ? { timeZone: tz } : {};
  return {
    tz,
    zoneName: tz || new Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time',
    long: new Intl.DateTimeFormat(undefined, { ...zoneOpt, dateStyle: 'medium', timeStyle: 'medium' }),
    short: new Intl.DateTimeFormat(undefined, { ...zoneOpt, dateStyle: 'medium', timeStyle: 'short' }),
    day: new Intl.DateTimeFormat(undefined, { ...zoneOpt, dateStyle: 'medium' }),
    month: new Intl.DateTimeFormat(undefined, { ...zoneOpt, year: 'numeric', month: 'long' }),
  };
}

export function withUnit(v, unit) {
  const text = fmtValue(v);
  return unit && text !== '—' ? `${text} ${unit}` : text;
}

export function chartHeight(width) {
  return Math.round(clamp(width * 0.45, 240, 440));
}

// uPlot's y axes have a fixed default width; this one grows with the longest tick label,
// plus room for the unit label when there is one.
function yAxisSize(u, values, axisIdx) {
  let longest = 0;
  for (const v of values || []) longest = Math.max(longest, String(v).length);
  const label = u.axes[axisIdx].label ? 22 : 0;
  return Math.ceil(18 + longest * 7.5 + label);
}

/**
 * Options for a chart of `list`. `view` is the page's shared state (see graph.js): its state
 * and lastInterval are read when uPlot formats a value, not now. `nav` has the range actions.
 */
export function chartOptions(list, view, nav) {
  const { state, fmt } = view;
  const bars = state.mode !== 'none';
  const n = list.length;
  const left = list.filter((f) => !state.right.has(f.id));
  const right = list.filter((f) => state.right.has(f.id));
  const units = (fs) => [...new Set(fs.map((f) => String(f.unit || '').trim()).filter(Boolean))].join(', ');
  const fg = '#1b1f1c';
  const grid = { stroke: '#e3e7e4', width: 1 };
  // Seconds only matter when points are less than a minute apart.
  const xValue = (self, v) => {
    if (v == null) return '—';
    const t = v * 1000;
    if (!bars) return (view.lastInterval || 60) < 60 ? fmt.long.format(t) : fmt.short.format(t);
    return state.mode === 'monthly' ? fmt.month.format(t) : fmt.day.format(t);
  };
  const series = [{ label: 'Time', value: xValue }];
  list.forEach((f, k) => series.push(feedSeries(f, k, n, bars, view)));
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
  const width = Math.max(200, Math.floor(view.chartEl.clientWidth || 600));
  return {
    width,
    height: chartHeight(width),
    tzDate: fmt.tz ? (ts) => uPlot.tzDate(new Date(ts * 1000), fmt.tz) : undefined,
    series,
    scales,
    axes,
    legend: { live: true },
    plugins: [tooltip(list.map((_, k) => colourOf(k)))],
    cursor: {
      // The selection is turned into a fetch at the new resolution (setSelect below), not
      // a zoom into the points already there.
      drag: { x: true, y: false, setScale: false },
      bind: {
        dblclick: () => (e) => { if (e.button === 0) nav.zoom(2); return null; },
      },
    },
    hooks: {
      setSelect: [(self) => {
        const sel = self.select;
        if (sel.width < 3) return;
        const a = self.posToVal(sel.left, 'x');
        const b = self.posToVal(sel.left + sel.width, 'x');
        self.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        nav.setRange(a, b);
      }],
    },
  };
}

/** The series of the k-th of n feeds: a line, or in bar mode its slot among n bars side by side. */
function feedSeries(f, k, n, bars, view) {
  const colour = colourOf(k);
  const unit = String(f.unit || '').trim();
  const s = {
    label: unit ? `${f.name} (${unit})` : String(f.name),
    scale: view.state.right.has(f.id) ? 'y2' : 'y',
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
            const p = barPeriod(xs, view.state.mode);
            return xs.map((x) => x - 0.4 * p + (k * 0.8 * p) / n);
          },
        },
        size: { unit: 1, values: (self) => [(0.8 * barPeriod(self.data[0], view.state.mode)) / n] },
      },
    });
  } else {
    s.spanGaps = true;
  }
  return s;
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
        // Beside the cursor, or to its left where it would run past the plot's right edge.
        const room = self.over.clientWidth;
        const x = left + 14 + tip.offsetWidth > room ? left - 14 - tip.offsetWidth : left + 14;
        const y = Math.max(0, top - tip.offsetHeight - 10);
        tip.style.transform = `translate(${Math.max(0, x)}px, ${y}px)`;
      },
    },
  };
}
