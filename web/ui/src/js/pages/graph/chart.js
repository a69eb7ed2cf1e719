// uPlot's options for the chosen feeds: a series and a colour each, a left and/or right y
// axis, the time axis, bars for the daily/weekly/monthly modes, and the tooltip. Times are
// formatted by ./timeaxis.js, in the user's zone. Drag-to-zoom and double-click are wired to
// the page's range actions here because uPlot owns those events.

import uPlot from '/ui/vendor/uPlot.esm.js';
import { h, clear, fmtValue } from '../../dom.js';
import { clamp } from './state.js';
import { barPeriod } from './resolution.js';
import { tickLabels, placeLabels, WIDEST_TICK } from './timeaxis.js';

const COLOURS = ['#1d6f42', '#2563eb', '#c2410c', '#9333ea', '#0e7490', '#b91c1c', '#4d7c0f', '#a16207'];

/** The colour of the k-th chosen feed, the same in the chart, tooltip and statistics. */
export const colourOf = (k) => COLOURS[k % COLOURS.length];

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
  const time = timeAxis(view, fg, grid);
  const axes = [time.axis];
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
      drawAxes: [time.draw],
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

// The time axis's labels are drawn by drawTimeLabels, not by uPlot: uPlot centres every
// label on its tick, so one near either end of the axis ran off the canvas and lost its first
// or last characters (12/2/26 read 2/2/26). The sizes below are CSS pixels.
const X_FONT_PX = 12;
const X_FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
const X_TICK = 10; // tick length, given to uPlot too, so the labels start where it expects
const X_GAP = 5; // between a tick's end and its label
const X_LINE = 1.5; // line height of two-line labels, in font sizes
const X_APART = 12; // the least room between two labels

let measurer = null;
function textWidth(text, font) {
  if (!measurer) measurer = document.createElement('canvas').getContext('2d');
  measurer.font = font;
  return measurer.measureText(text).width;
}

/**
 * The x axis's options (uPlot places its ticks and grid) and the drawAxes hook that writes
 * its labels. `values` hands uPlot no text; it keeps the labels of the ticks just chosen.
 */
function timeAxis(view, fg, grid) {
  let labels = [];
  let space = 0;
  const axis = {
    stroke: fg,
    grid,
    ticks: { ...grid, size: X_TICK },
    gap: X_GAP,
    // Ticks at least a widest label (and a margin) apart, so that labels away from the ends
    // never need moving.
    space: () => {
      if (!space) space = Math.ceil(textWidth(WIDEST_TICK, `${X_FONT_PX}px ${X_FONT}`)) + X_APART;
      return space;
    },
    values: (self, splits, axisIdx, foundSpace, incr) => {
      labels = tickLabels(splits, incr, view.fmt.parts);
      return splits.map(() => null);
    },
  };
  return { axis, draw: (u) => drawTimeLabels(u, labels, fg, view.chartEl) };
}

/**
 * Writes the time axis's labels under their ticks, each measured and kept wholly on the
 * canvas (see placeLabels). Also leaves each label's text and extent, in CSS pixels from the
 * canvas's left edge, in the chart's data-xlabels for the browser test.
 */
function drawTimeLabels(u, labels, colour, chartEl) {
  const pr = uPlot.pxRatio || 1;
  const { ctx } = u;
  const { min, max } = u.scales.x;
  const px = Math.round(X_FONT_PX * pr);
  // uPlot caches the context's font and colours between draws: leave them as found.
  ctx.save();
  ctx.font = `${px}px ${X_FONT}`;
  ctx.fillStyle = colour;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'top';
  // The labels are those of uPlot's latest ticks; a scale with no room for ticks keeps old ones.
  const items = labels.filter((l) => l.at >= min && l.at <= max).map(({ at, lines }) => {
    const widths = lines.map((line) => ctx.measureText(line).width);
    return { lines, widths, w: Math.max(...widths), x: u.valToPos(at, 'x', true) };
  });
  const placed = placeLabels(items, ctx.canvas.width, X_APART * pr);
  const top = u.bbox.top + u.bbox.height + Math.round((X_TICK + X_GAP) * pr);
  for (const { lines, widths, w, left } of placed) {
    lines.forEach((line, j) => ctx.fillText(line, left + (w - widths[j]) / 2, top + j * px * X_LINE));
  }
  ctx.restore();
  const css = (v) => Math.round((v / pr) * 10) / 10;
  chartEl.dataset.xlabels = JSON.stringify(
    placed.map((p) => [p.lines.join(' '), css(p.left), css(p.left + p.w)]),
  );
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
