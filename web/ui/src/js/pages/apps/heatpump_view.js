// My Heatpump: power, heat and COP now; the day shown (`?day=`, else today) as a strip of
// running, defrost, standby and off periods with their totals; and the last 30 days: kWh in
// and out, daily COP as bars against the day's mean outside temperature, and the SCOP.

import { h, clear, fmtValue } from '../../dom.js';
import { get } from '../../api.js';
import { heatpumpDays, heatpumpStates } from './heatpump.js';
import { graphInterval } from './solar.js';
import { midnight, feedId, period, fact } from './common.js';

const SVG = 'http://www.w3.org/2000/svg';
const STATE_NAMES = { running: 'Running', defrost: 'Defrost', standby: 'Standby', off: 'Off', none: 'No data' };

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const fixed = (v, dp) => (v === null || v === undefined ? '—' : Number(v).toFixed(dp));

/** The day's periods as a strip across 24 hours, one colour per state. */
function stateStrip(periods, start, end) {
  const span = Math.max(1, end - start);
  const strip = h('div.hp-strip', { role: 'img', 'aria-label': 'What the heat pump did through the day' });
  for (const p of periods) {
    if (p.state === 'none') continue;
    const seg = h(`span.hp-${p.state}`, {
      title: `${STATE_NAMES[p.state]} ${new Date(p.from).toTimeString().slice(0, 5)}–${new Date(p.to).toTimeString().slice(0, 5)}`,
      dataset: { state: p.state, from: p.from, to: p.to },
    });
    seg.style.left = `${(100 * (p.from - start)) / span}%`;
    seg.style.width = `${(100 * (p.to - p.from)) / span}%`;
    strip.append(seg);
  }
  const legend = h('p.hp-legend', ['running', 'defrost', 'standby', 'off'].map((s) => h('span', h(`i.hp-${s}`), ` ${STATE_NAMES[s]}`)));
  return [strip, legend];
}

/** Daily COP as bars, and the day's mean outside temperature as dots on its own scale. */
function copChart(days) {
  const W = 600;
  const H = 220;
  const pad = { l: 34, r: 40, t: 10, b: 24 };
  const cops = days.map((d) => d.cop).filter((v) => v !== null);
  const temps = days.map((d) => d.outside).filter((v) => v !== null);
  const copMax = Math.max(5, Math.ceil(Math.max(0, ...cops)));
  const tMin = temps.length ? Math.floor(Math.min(...temps) - 1) : 0;
  const tMax = temps.length ? Math.ceil(Math.max(...temps) + 1) : 20;
  const x = (i) => pad.l + ((i + 0.5) * (W - pad.l - pad.r)) / Math.max(1, days.length);
  const yCop = (v) => H - pad.b - (v / copMax) * (H - pad.t - pad.b);
  const yT = (v) => H - pad.b - ((v - tMin) / Math.max(1, tMax - tMin)) * (H - pad.t - pad.b);
  const bw = Math.max(2, ((W - pad.l - pad.r) / Math.max(1, days.length)) * 0.7);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'hp-cop', role: 'img', 'aria-label': 'Daily COP (bars) and outside temperature (dots)' });
  for (let c = 0; c <= copMax; c += 1) {
    chart.append(svg('line', { x1: pad.l, x2: W - pad.r, y1: yCop(c), y2: yCop(c), class: 'grid' }),
      svg('text', { x: pad.l - 6, y: yCop(c) + 4, 'text-anchor': 'end', class: 'axis' }, String(c)));
  }
  chart.append(svg('text', { x: W - pad.r + 6, y: yT(tMax) + 4, class: 'axis temp' }, `${tMax} °C`),
    svg('text', { x: W - pad.r + 6, y: yT(tMin) + 4, class: 'axis temp' }, `${tMin} °C`));
  const points = [];
  days.forEach((d, i) => {
    if (d.cop !== null) {
      const bar = svg('rect', { x: x(i) - bw / 2, y: yCop(d.cop), width: bw, height: H - pad.b - yCop(d.cop), class: 'bar', 'data-date': d.date, 'data-cop': d.cop.toFixed(2) });
      bar.append(svg('title', {}, `${d.date}: COP ${d.cop.toFixed(2)}${d.outside !== null ? `, ${d.outside.toFixed(1)} °C outside` : ''}`));
      chart.append(bar);
    }
    if (d.outside !== null) points.push([x(i), yT(d.outside)]);
  });
  if (points.length > 1) chart.append(svg('polyline', { points: points.map((p) => p.join(',')).join(' '), class: 'temp-line' }));
  for (const [px, py] of points) chart.append(svg('circle', { cx: px, cy: py, r: 3, class: 'temp-dot' }));
  if (days.length) {
    chart.append(svg('text', { x: x(0), y: H - 6, 'text-anchor': 'start', class: 'axis' }, days[0].date.slice(5)),
      svg('text', { x: x(days.length - 1), y: H - 6, 'text-anchor': 'end', class: 'axis' }, days[days.length - 1].date.slice(5)));
  }
  return chart;
}

export async function myHeatpump(body, app, q, params = new URLSearchParams()) {
  const c = app.config;
  const elec = feedId(c.heatpump_elec);
  const elecKwh = feedId(c.heatpump_elec_kwh);
  if (!elec || !elecKwh) {
    clear(body, h('p', 'Choose the electricity feeds first.'));
    return;
  }
  const heat = feedId(c.heatpump_heat);
  const heatKwh = feedId(c.heatpump_heat_kwh);
  const temps = [['Flow', feedId(c.heatpump_flowT)], ['Return', feedId(c.heatpump_returnT)], ['Outside', feedId(c.heatpump_outsideT)]]
    .filter(([, id]) => id);
  const now = Date.now();
  const start = midnight(30);
  const [dayStart, dayEnd] = period(params);
  const interval = graphInterval((dayEnd - dayStart) / 1000);
  const power = (id) => (id ? get('feed/data.json', { id, start: dayStart, end: dayEnd, interval, average: 1, skipmissing: 0, limitinterval: 0, ...q }) : Promise.resolve(null));
  const daily = (id, delta) => (id ? get('feed/data.json', { id, start, end: now, interval: 'daily', delta: delta ? 1 : 0, average: delta ? 0 : 1, skipmissing: 0, limitinterval: 0, ...q }) : Promise.resolve([]));
  const value = (id) => (id ? get('feed/value.json', { id, ...q }) : Promise.resolve(null));
  const [elecNow, heatNow, elecDays, heatDays, outsideDays, elecPower, heatPower, ...tempNow] = await Promise.all([
    value(elec), value(heat), daily(elecKwh, true), daily(heatKwh, true), daily(feedId(c.heatpump_outsideT), false),
    power(elec), power(heat), ...temps.map(([, id]) => value(id))]);
  const f = heatpumpDays(elecDays, heatDays, outsideDays);
  const s = heatpumpStates(elecPower, heatPower, interval, Number(c.starting_power ?? 150) || 150);
  const copNow = heat && Number(elecNow) > 0 ? Number(heatNow) / Number(elecNow) : null;
  clear(body,
    h('section.card', h('h2', 'Now'), h('dl.facts',
      fact('hp-elec-now', 'Electricity in', `${fmtValue(elecNow, 0)} W`),
      heat ? [fact('hp-heat-now', 'Heat out', `${fmtValue(heatNow, 0)} W`), fact('hp-cop-now', 'COP', fixed(copNow, 2))] : null,
      temps.map(([label], i) => [h('dt', `${label} temperature`), h('dd', `${fixed(tempNow[i], 1)} °C`)]))),
    h('section.card', h('h2', params.get('day') || 'Today'),
      stateStrip(s.periods, dayStart, dayStart + 86400000),
      h('dl.facts',
        fact('hp-running', 'Running', `${s.runningH.toFixed(1)} h`),
        heat ? fact('hp-running-cop', 'COP while running', fixed(s.runningCop, 2)) : null,
        heat ? fact('hp-defrosts', 'Defrosts', `${s.defrosts} (${Math.round(s.defrostMin)} min)`) : null,
        fact('hp-standby', 'Standby', `${s.standbyH.toFixed(1)} h · ${s.standbyKwh.toFixed(2)} kWh`))),
    h('section.card', h('h2', 'Last 30 days'), h('dl.facts',
      fact('hp-elec-period', 'Electricity in', `${f.elec.toFixed(1)} kWh`),
      fact('hp-heat-period', 'Heat out', `${f.heat.toFixed(1)} kWh`),
      fact('hp-scop', 'SCOP', fixed(f.scop, 2))),
    copChart(f.days),
    h('div.table-wrap', h('table', { id: 'hp-days' },
      h('thead', h('tr', h('th', 'Day'), h('th.num', 'Electricity kWh'), h('th.num', 'Heat kWh'), h('th.num', 'COP'), h('th.num', 'Outside °C'))),
      h('tbody', f.days.slice().reverse().map((d) => h('tr', { dataset: { date: d.date } }, h('td', d.date),
        h('td.num', fixed(d.elec, 1)), h('td.num', fixed(d.heat, 1)), h('td.num', fixed(d.cop, 2)), h('td.num', fixed(d.outside, 1)))))))));
}
