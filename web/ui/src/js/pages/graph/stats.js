// What the drawn range says, refreshed after every draw: the statistics table under the chart
// (#stats) with min, max, mean and a total for each feed over the part of the fetched data
// that is on screen; the status line; and the chart's aria-label, which is all a screen
// reader gets of the drawing.

import { h, clear } from '../../dom.js';
import { fmtInterval, isCumulative } from '../../feedmeta.js';
import { barPeriod, deltaFor } from './resolution.js';
import { colourOf, withUnit } from './chart.js';

const MODE_WORD = { daily: 'Daily', weekly: 'Weekly', monthly: 'Monthly' };

/** The empty table; its body is filled by updateStats after every draw. */
export function statsTable() {
  const body = h('tbody');
  const table = h('table', { id: 'stats' },
    h('caption.muted', 'Statistics of the visible range'),
    h('thead', h('tr',
      h('th', { scope: 'col' }, 'Feed'),
      h('th.num', { scope: 'col' }, 'Min'),
      h('th.num', { scope: 'col' }, 'Max'),
      h('th.num', { scope: 'col' }, 'Mean'),
      h('th.num', { scope: 'col' }, 'Total'))),
    body);
  return { table, body };
}

/** How many values of all series fall within [xmin, xmax]. */
export function pointsIn(data, xmin, xmax) {
  let points = 0;
  const xs = data[0];
  for (let s = 1; s < data.length; s++) {
    const ys = data[s];
    for (let i = 0; i < xs.length; i++) if (ys[i] != null && xs[i] >= xmin && xs[i] <= xmax) points++;
  }
  return points;
}

export function updateStats(body, data, list, xmin, xmax, interval, state) {
  const xs = data[0];
  const bars = state.mode !== 'none';
  const step = bars ? barPeriod(xs, state.mode) : interval;
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
      // Each value holds until the next one, cut to the visible range at both ends.
      const next = i + 1 < xs.length ? xs[i + 1] : x + step;
      energy += v * Math.max(0, Math.min(next, xmax) - Math.max(x, xmin));
    }
    const { total, totalUnit, kind } = n ? totalOf(f, list, state, { sum, energy, first, last }, unit) : { total: null };
    const swatch = h('span.graph-swatch', { 'aria-hidden': 'true' });
    swatch.style.background = colourOf(k);
    return h('tr', { dataset: { feed: f.id } },
      h('th', { scope: 'row' }, swatch, f.name),
      h('td.num', n ? withUnit(min, unit) : '—'),
      h('td.num', n ? withUnit(max, unit) : '—'),
      h('td.num', n ? withUnit(sum / n, unit) : '—'),
      h('td.num', total === null ? '—' : [withUnit(total, totalUnit), h('span.muted', ` ${kind}`)]));
  });
  clear(body, rows);
}

// Which total means something depends on the feed: differences add up, power integrates to
// energy (for bars only averaged ones: without Average a bar is one sample, not its period),
// and for a cumulative meter it is how far the meter moved.
function totalOf(f, list, state, { sum, energy, first, last }, unit) {
  const bars = state.mode !== 'none';
  if (deltaFor(f, list, state.delta)) return { total: sum, totalUnit: unit, kind: 'sum' };
  if (/^w$/i.test(unit) && (!bars || state.avg)) return { total: energy / 3.6e6, totalUnit: 'kWh', kind: 'energy' };
  if (/^kw$/i.test(unit) && (!bars || state.avg)) return { total: energy / 3600, totalUnit: 'kWh', kind: 'energy' };
  if (isCumulative(unit) && !bars) return { total: last - first, totalUnit: unit, kind: 'change' };
  return { total: null, totalUnit: unit, kind: '' };
}

/** After a draw: the chart's aria-label, the status line and the picker's count. */
export function describe(view, list, points, interval) {
  const { state, fmt, chartEl, status } = view;
  const bars = state.mode !== 'none';
  const anyRight = list.some((f) => state.right.has(f.id));
  const names = list.map((f) => {
    const bits = [f.unit, anyRight ? `${state.right.has(f.id) ? 'right' : 'left'} axis` : ''].filter(Boolean);
    return bits.length ? `${f.name} (${bits.join(', ')})` : f.name;
  });
  const what = bars ? `${MODE_WORD[state.mode]} bars` : 'Line graph';
  const how = [state.avg ? 'averaged' : '', state.delta ? 'differences per interval' : ''].filter(Boolean).join(', ');
  chartEl.setAttribute('aria-label', `${what} of ${names.join(' and ')} from ${fmt.short.format(state.start * 1000)} `
    + `to ${fmt.short.format(state.end * 1000)}${how ? `, ${how}` : ''}`);
  status.classList.remove('error');
  const step = bars ? MODE_WORD[state.mode] : `Every ${fmtInterval(interval)}`;
  let text = `${fmt.short.format(state.start * 1000)} – ${fmt.short.format(state.end * 1000)} · ${step} · `
    + `${points} ${bars ? 'bars' : 'points'}`;
  // Without averaging a sparse feed can fall between the samples of a long range.
  if (!points) text += state.avg || bars ? ' · no data in this range' : ' · no data here; try Average';
  status.textContent = text;
  view.pickerCount.textContent = `(${list.length} chosen)`;
}
