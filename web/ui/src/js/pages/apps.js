// Apps (emoncms's app module, drawn by ynni): the user's apps, adding one, picking its feeds,
// and the app itself: My Electric, My Solar (alone, with a battery, with a diverter) and My
// Heatpump. Opened with
// `?share=<token>&id=<app>` the page shows one app read-only, without logging in.

import { h, clear, field, toast, fmtValue } from '../dom.js';
import { get, post } from '../api.js';
import { pounds } from '../money.js';
import { dailyFigures, groupDays } from './apps/figures.js';
import { solarFigures, graphInterval, solarDays } from './apps/solar.js';
import { myHeatpump } from './apps/heatpump_view.js';
import { midnight, feedId, period, kwhText, pctText, fact } from './apps/common.js';
import { batteryFigures, divertFigures } from './apps/battery.js';
import { parseBands, priceAt, costByDay } from './apps/tariff.js';

/** Config keys of each type ynni draws: feeds (required or not) and values with defaults. */
const TYPES = {
  myelectric: {
    title: 'My Electric',
    drawn: true,
    keys: [
      { key: 'use', type: 'feed', label: 'Power now (W)' },
      { key: 'use_kwh', type: 'feed', label: 'Energy used (cumulative kWh)' },
      { key: 'unitcost', type: 'value', label: 'Unit cost', default: 0.1508 },
      { key: 'currency', type: 'value', label: 'Currency symbol', default: '£' },
      { key: 'tou_bands', type: 'value', label: 'Time-of-use prices (optional), e.g. 00:00-07:00=0.075, 07:00-24:00=0.2867', default: '' },
    ],
  },
  mysolarpv: {
    title: 'My Solar',
    drawn: true,
    keys: [
      { key: 'use', type: 'feed', label: 'House use (W)' },
      { key: 'solar', type: 'feed', label: 'Solar generation (W)' },
      { key: 'use_kwh', type: 'feed', label: 'House use (cumulative kWh, optional)' },
      { key: 'solar_kwh', type: 'feed', label: 'Solar (cumulative kWh, optional)' },
      { key: 'import_kwh', type: 'feed', label: 'Grid import (cumulative kWh, optional)' },
      { key: 'solar_disp_min', type: 'value', label: 'Solar below this is none (W)', default: 10 },
    ],
  },
  mysolarpvbattery: {
    title: 'My Solar with Battery',
    drawn: true,
    keys: [
      { key: 'use', type: 'feed', label: 'House use, without battery charging (W)' },
      { key: 'solar', type: 'feed', label: 'Solar generation (W)' },
      { key: 'battery_charge', type: 'feed', label: 'Battery charging (W)' },
      { key: 'battery_discharge', type: 'feed', label: 'Battery discharging (W)' },
      { key: 'battery_soc', type: 'feed', label: 'Battery state of charge (%, optional)' },
      { key: 'battery_capacity_kwh', type: 'value', label: 'Battery capacity (kWh)', default: 0 },
      { key: 'is_dc_battery', type: 'value', label: 'DC-coupled battery (1) or AC (0)', default: 0 },
    ],
  },
  mysolarpvdivert: {
    title: 'My Solar with Divert',
    drawn: true,
    keys: [
      { key: 'use', type: 'feed', label: 'Use, including what is diverted (W)' },
      { key: 'solar', type: 'feed', label: 'Solar generation (W)' },
      { key: 'divert', type: 'feed', label: 'Diverted to the immersion heater (W)' },
      { key: 'wind', type: 'feed', label: 'Wind generation (W, optional)' },
    ],
  },
  myheatpump: {
    title: 'My Heatpump',
    drawn: true,
    keys: [
      { key: 'heatpump_elec', type: 'feed', label: 'Electricity in (W)' },
      { key: 'heatpump_elec_kwh', type: 'feed', label: 'Electricity in (cumulative kWh)' },
      { key: 'heatpump_heat', type: 'feed', label: 'Heat out (W, optional)' },
      { key: 'heatpump_heat_kwh', type: 'feed', label: 'Heat out (cumulative kWh, optional)' },
      { key: 'heatpump_flowT', type: 'feed', label: 'Flow temperature (optional)' },
      { key: 'heatpump_returnT', type: 'feed', label: 'Return temperature (optional)' },
      { key: 'heatpump_outsideT', type: 'feed', label: 'Outside temperature (optional)' },
      { key: 'starting_power', type: 'value', label: 'Running above (W; below is standby)', default: 150 },
    ],
  },
};

function configForm(app, feeds, onSaved) {
  const type = TYPES[app.app];
  const inputs = type.keys.map((k) => {
    let input;
    if (k.type === 'feed') {
      input = h('select', { name: k.key },
        h('option', { value: '' }, '(choose a feed)'),
        feeds.map((f) => h('option', { value: String(f.id) }, `${f.tag ? `${f.tag}: ` : ''}${f.name}`)));
      input.value = app.config[k.key] !== undefined ? String(app.config[k.key])
        : String(feeds.find((f) => f.name === k.key)?.id ?? '');
    } else {
      input = h('input', { name: k.key, value: String(app.config[k.key] ?? k.default ?? '') });
    }
    return [k, input];
  });
  return h('form.card', {
    onsubmit: async (e) => {
      e.preventDefault();
      const config = {};
      for (const [k, input] of inputs) {
        if (input.value === '') continue;
        config[k.key] = k.type === 'feed' ? input.value : (Number.isFinite(Number(input.value)) && k.key !== 'currency' ? Number(input.value) : input.value);
      }
      try {
        await get('app/setconfig.json', { id: app.id, config: JSON.stringify(config) });
        toast('Saved');
        await onSaved();
      } catch (err) { toast(err.message, 'error'); }
    },
  }, h('h2', `Set up ${app.name}`), inputs.map(([k, input]) => field(k.label, input)),
  h('button.primary', { type: 'submit' }, 'Save'));
}

/** Half-hour or hourly kWh steps over the days `dailyFigures` covers, for a time-of-use tariff. */
async function steps(kwh, start, end, q) {
  const meta = await get('feed/getmeta.json', { id: kwh, ...q });
  const step = Number(meta?.interval) > 1800 ? 3600 : 1800;
  return get('feed/data.json', { id: kwh, start, end, interval: step, delta: 1, skipmissing: 0, limitinterval: 0, ...q });
}

async function myElectric(body, app, q) {
  const c = app.config;
  const use = feedId(c.use);
  const kwh = feedId(c.use_kwh);
  const unit = Number(c.unitcost ?? 0.1508);
  const cur = c.currency || '£';
  const fmtMoney = (m) => (cur === '£' ? pounds(Math.round(m * 100)) : `${cur}${m.toFixed(2)}`);
  if (!use || !kwh) {
    clear(body, h('p', 'Choose the power and energy feeds first.'));
    return;
  }
  let bands = [];
  try {
    bands = parseBands(c.tou_bands);
  } catch (e) {
    clear(body, h('p.error', e.message));
    return;
  }
  const now = Date.now();
  const start = midnight(400);
  const [power, yearData, tou] = await Promise.all([
    get('feed/value.json', { id: use, ...q }),
    get('feed/data.json', { id: kwh, start, end: now, interval: 'daily', delta: 1, skipmissing: 0, limitinterval: 0, ...q }),
    bands.length ? steps(kwh, start, now, q) : Promise.resolve(null),
  ]);
  // A day's cost: its kWh at the flat rate, or each step at its band's price.
  const costs = tou ? costByDay(tou, bands, unit) : null;
  const dayCost = (d) => (costs ? costs.get(d.date) ?? 0 : (d.kwh ?? 0) * unit);
  const f = dailyFigures(yearData, new Date(now), dayCost);
  const last30 = f.days.slice(-30);
  const both = (k, m, dp) => `${k.toFixed(dp)} kWh · ${fmtMoney(m)}`;
  // Bars of the last 30 days, 13 weeks or 13 months.
  const barsBox = h('div');
  const groups = {
    day: last30.map((d) => ({ label: d.date, kwh: d.kwh, cost: d.kwh === null ? 0 : dayCost(d) })),
    week: groupDays(f.days, 'week', dayCost).slice(-13),
    month: groupDays(f.days, 'month', dayCost).slice(-13),
  };
  const names = { day: 'day', week: 'week', month: 'month' };
  const drawBars = (by) => {
    const items = groups[by];
    const max = Math.max(0.001, ...items.map((d) => d.kwh ?? 0));
    clear(barsBox, h('div.bars', { id: 'use-bars', role: 'img', 'aria-label': `kWh per ${names[by]}`, dataset: { by } },
      items.map((d) => {
        // Heights through the style DOM API: the page's CSP refuses style attributes.
        const fill = h('span');
        fill.style.height = `${Math.round((100 * (d.kwh ?? 0)) / max)}%`;
        return h('div.bar', { title: `${d.label}: ${(d.kwh ?? 0).toFixed(1)} kWh · ${fmtMoney(d.cost)}`, dataset: { label: d.label, kwh: d.kwh ?? '' } }, fill);
      })));
    for (const b of periodToggle.querySelectorAll('button')) b.setAttribute('aria-pressed', b.dataset.by === by ? 'true' : 'false');
  };
  const periodToggle = h('div.toolbar', { role: 'group', 'aria-label': 'Bars per' },
    Object.keys(groups).map((by) => h('button', { type: 'button', dataset: { by }, onclick: () => drawBars(by) }, `Per ${names[by]}`)));
  drawBars('day');
  clear(body,
    h('section.card.me-now', h('h2', 'Now'),
      h('p.big', { id: 'power-now', dataset: { watts: power } }, `${fmtValue(power, 0)} W`),
      h('p', 'Today: ', h('strong', { id: 'today-kwh', dataset: { kwh: f.today } }, `${f.today.toFixed(1)} kWh`), ` · ${fmtMoney(f.todayCost)}`),
      bands.length ? h('p.muted', { id: 'tariff-now' }, `Now ${fmtMoney(priceAt(bands, new Date().getHours() * 60 + new Date().getMinutes(), unit))} per kWh`) : null),
    h('section.card', h('h2', 'Totals'), h('dl.facts',
      h('dt', 'This week'), h('dd', { id: 'week-kwh' }, both(f.week, f.weekCost, 1)),
      h('dt', 'This month'), h('dd', { id: 'month-kwh' }, both(f.month, f.monthCost, 0)),
      h('dt', 'Same days last year'), h('dd', { id: 'month-last-year' },
        f.monthLastYear === null ? 'no data' : both(f.monthLastYear, f.monthLastYearCost, 0)),
      h('dt', 'This year'), h('dd', { id: 'year-kwh' }, both(f.year, f.yearCost, 0)))),
    h('section.card', h('h2', 'Use'), periodToggle, barsBox,
      h('div.table-wrap', h('table', { id: 'days' },
        h('thead', h('tr', h('th', 'Day'), h('th.num', 'kWh'), h('th.num', 'Cost'))),
        h('tbody', last30.slice().reverse().map((d) => h('tr', { dataset: { date: d.date } }, h('td', d.date),
          h('td.num', d.kwh === null ? '—' : d.kwh.toFixed(1)), h('td.num', d.kwh === null ? '—' : fmtMoney(dayCost(d))))))))));
}

async function mySolar(body, app, q, params) {
  const c = app.config;
  const use = feedId(c.use);
  const solar = feedId(c.solar);
  if (!use || !solar) {
    clear(body, h('p', 'Choose the use and solar feeds first.'));
    return;
  }
  const [start, end] = period(params);
  const interval = graphInterval((end - start) / 1000);
  const read = (id) => get('feed/data.json', { id, start, end, interval, average: 1, skipmissing: 0, limitinterval: 0, ...q });
  const [useNow, solarNow, useData, solarData] = await Promise.all([
    get('feed/value.json', { id: use, ...q }), get('feed/value.json', { id: solar, ...q }), read(use), read(solar)]);
  const f = solarFigures(useData, solarData, interval, Number(c.solar_disp_min ?? 10));
  const grid = Number(useNow) - Number(solarNow);
  clear(body,
    h('section.card', h('h2', 'Now'), h('dl.facts',
      fact('solar-now', 'Solar', `${fmtValue(solarNow, 0)} W`),
      fact('use-now', 'House', `${fmtValue(useNow, 0)} W`),
      fact('grid-now', grid >= 0 ? 'Importing' : 'Exporting', `${fmtValue(Math.abs(grid), 0)} W`))),
    h('section.card', h('h2', params.get('day') ? params.get('day') : 'Today'), h('dl.facts',
      fact('solar-kwh', 'Solar generated', kwhText(f.solar)),
      fact('use-kwh', 'House used', kwhText(f.use)),
      fact('direct-kwh', 'Solar used in the house', kwhText(f.direct)),
      fact('export-kwh', 'Exported', kwhText(f.export)),
      fact('import-kwh', 'Imported', kwhText(f.import)),
      fact('self-consumption', 'Self-consumption (solar used here)', pctText(f.selfConsumption)),
      fact('self-sufficiency', 'Self-sufficiency (use met by solar)', pctText(f.selfSufficiency)))),
    h('section.card', h('h2', 'Where the energy went'), flowBars('Energy flows', [
      ['solar-house', 'Solar → house', f.direct], ['solar-grid', 'Solar → grid', f.export], ['grid-house', 'Grid → house', f.import]])));
  const kwhIds = [c.use_kwh, c.solar_kwh, c.import_kwh].map(feedId);
  if (kwhIds.every(Boolean)) body.append(await solarHistory(kwhIds, q));
}

/** The last 30 days from My Solar's cumulative kWh feeds, as stacked bars per day. */
async function solarHistory([useKwh, solarKwh, importKwh], q) {
  const read = (id) => get('feed/data.json', { id, start: midnight(29), end: Date.now(), interval: 'daily', delta: 1, skipmissing: 0, limitinterval: 0, ...q });
  const f = solarDays(...(await Promise.all([read(useKwh), read(solarKwh), read(importKwh)])));
  const max = Math.max(0.001, ...f.days.map((d) => Math.max(d.use ?? 0, d.solar ?? 0, (d.direct ?? 0) + (d.export ?? 0) + (d.import ?? 0))));
  const part = (cls, kwh) => {
    const el = h(`span.${cls}`);
    el.style.height = `${(100 * (kwh ?? 0)) / max}%`;
    return el;
  };
  return h('section.card', h('h2', 'Last 30 days'),
    h('dl.facts',
      h('dt', 'Solar generated'), h('dd', { id: 'hist-solar' }, kwhText(f.solar)),
      h('dt', 'Self-consumption'), h('dd', { id: 'hist-self-consumption' }, pctText(f.selfConsumption)),
      h('dt', 'Self-sufficiency'), h('dd', { id: 'hist-self-sufficiency' }, pctText(f.selfSufficiency))),
    h('div.bars.stacked', { role: 'img', 'aria-label': 'Per day: solar used here, exported, imported' },
      f.days.map((d) => h('div.bar', {
        title: `${d.date}: ${d.direct === null ? 'no data' : `${d.direct.toFixed(1)} kWh solar used, ${d.export.toFixed(1)} exported, ${d.import.toFixed(1)} imported`}`,
        dataset: { date: d.date, direct: d.direct ?? '', export: d.export ?? '', import: d.import ?? '' },
      }, part('s-direct', d.direct), part('s-export', d.export), part('s-import', d.import)))),
    h('p.hp-legend', h('span', h('i.s-direct'), ' Solar used here'), h('span', h('i.s-export'), ' Exported'), h('span', h('i.s-import'), ' Imported')));
}

/** Energy flows as bars whose lengths compare at a glance: [[id, from → to, kWh], …]. */
function flowBars(label, flows) {
  const max = Math.max(0.001, ...flows.map(([, , kwh]) => kwh));
  return h('div.flows', { role: 'list', 'aria-label': label }, flows.map(([id, text, kwh]) => {
    const fill = h('span.flow-fill');
    fill.style.width = `${Math.round((100 * kwh) / max)}%`;
    return h('div.flow', { role: 'listitem', dataset: { flow: id, kwh: kwh.toFixed(3) } },
      h('span.flow-name', text), h('span.flow-bar', fill), h('span.flow-kwh', { id: `flow-${id}` }, kwhText(kwh)));
  }));
}

/** Power series of the day the page shows, for `ids` (null for an unset feed). */
async function dayPower(ids, q, params) {
  const [start, end] = period(params);
  const interval = graphInterval((end - start) / 1000);
  const read = (id) => (id ? get('feed/data.json', { id, start, end, interval, average: 1, skipmissing: 0, limitinterval: 0, ...q }) : Promise.resolve(null));
  const now = (id) => (id ? get('feed/value.json', { id, ...q }) : Promise.resolve(null));
  const [series, values] = await Promise.all([Promise.all(ids.map(read)), Promise.all(ids.map(now))]);
  return { series, values, interval };
}

async function mySolarBattery(body, app, q, params) {
  const c = app.config;
  const ids = ['use', 'solar', 'battery_charge', 'battery_discharge', 'battery_soc'].map((k) => feedId(c[k]));
  if (ids.slice(0, 4).some((id) => !id)) {
    clear(body, h('p', 'Choose the use, solar, battery charge and battery discharge feeds first.'));
    return;
  }
  const { series: [use, solar, charge, discharge], values: [useNow, solarNow, chargeNow, dischargeNow, socNow], interval } = await dayPower(ids, q, params);
  const dc = Number(c.is_dc_battery) === 1;
  const f = batteryFigures(use, solar, charge, discharge, interval, dc);
  const net = Number(chargeNow) - Number(dischargeNow);
  const grid = dc ? Number(useNow) - Number(solarNow) : Number(useNow) + Number(chargeNow) - Number(solarNow) - Number(dischargeNow);
  const capacity = Number(c.battery_capacity_kwh) || 0;
  let left = null;
  if (capacity > 0 && socNow !== null && net < 0) left = (capacity * Number(socNow)) / 100 / (-net / 1000);
  clear(body,
    h('section.card', h('h2', 'Now'), h('dl.facts',
      fact('solar-now', 'Solar', `${fmtValue(solarNow, 0)} W`),
      fact('use-now', 'House', `${fmtValue(useNow, 0)} W`),
      fact('battery-now', net >= 0 ? 'Battery charging' : 'Battery discharging', `${fmtValue(Math.abs(net), 0)} W`),
      ids[4] ? fact('soc-now', 'Battery charge', `${fmtValue(socNow, 0)} %`) : null,
      left !== null ? fact('battery-left', 'Battery lasts at this rate', `${left.toFixed(1)} h`) : null,
      fact('grid-now', grid >= 0 ? 'Importing' : 'Exporting', `${fmtValue(Math.abs(grid), 0)} W`))),
    h('section.card', h('h2', params.get('day') ? params.get('day') : 'Today'), h('dl.facts',
      fact('solar-kwh', 'Solar generated', kwhText(f.solar)),
      fact('use-kwh', 'House used', kwhText(f.use)),
      fact('charge-kwh', 'Battery charged', kwhText(f.charge)),
      fact('discharge-kwh', 'Battery discharged', kwhText(f.discharge)),
      fact('export-kwh', 'Exported', kwhText(f.export)),
      fact('import-kwh', 'Imported', kwhText(f.import)),
      fact('self-consumption', 'Self-consumption (solar used here)', pctText(f.selfConsumption)),
      fact('self-sufficiency', 'Self-sufficiency (use not from the grid)', pctText(f.selfSufficiency)))),
    h('section.card', h('h2', 'Where the energy went'), flowBars('Energy flows', [
      ['solar-house', 'Solar → house', f.solarDirect], ['solar-battery', 'Solar → battery', f.solarToBattery],
      ['solar-grid', 'Solar → grid', f.export], ['battery-house', 'Battery → house', f.batteryToHouse],
      ['grid-house', 'Grid → house', f.importDirect], ['grid-battery', 'Grid → battery', f.gridToBattery]])));
}

async function mySolarDivert(body, app, q, params) {
  const c = app.config;
  const ids = ['use', 'solar', 'divert', 'wind'].map((k) => feedId(c[k]));
  if (ids.slice(0, 3).some((id) => !id)) {
    clear(body, h('p', 'Choose the use, solar and divert feeds first.'));
    return;
  }
  const { series: [use, solar, divert, wind], values: [useNow, solarNow, divertNow, windNow], interval } = await dayPower(ids, q, params);
  const f = divertFigures(use, solar, divert, interval, wind);
  const grid = Number(useNow) - Number(solarNow) - Number(windNow ?? 0);
  clear(body,
    h('section.card', h('h2', 'Now'), h('dl.facts',
      fact('solar-now', 'Solar', `${fmtValue(solarNow, 0)} W`),
      ids[3] ? fact('wind-now', 'Wind', `${fmtValue(windNow, 0)} W`) : null,
      fact('use-now', 'House and diverter', `${fmtValue(useNow, 0)} W`),
      fact('divert-now', 'Diverted', `${fmtValue(divertNow, 0)} W`),
      fact('grid-now', grid >= 0 ? 'Importing' : 'Exporting', `${fmtValue(Math.abs(grid), 0)} W`))),
    h('section.card', h('h2', params.get('day') ? params.get('day') : 'Today'), h('dl.facts',
      fact('solar-kwh', ids[3] ? 'Solar and wind generated' : 'Solar generated', kwhText(f.gen)),
      fact('use-kwh', 'Used, with the diverter', kwhText(f.use)),
      fact('divert-kwh', 'Diverted to heat', kwhText(f.divert)),
      fact('house-kwh', 'House alone', kwhText(f.house)),
      fact('export-kwh', 'Exported', kwhText(f.export)),
      fact('import-kwh', 'Imported', kwhText(f.import)),
      fact('self-consumption', 'Self-consumption (generation used here)', pctText(f.selfConsumption)),
      fact('self-sufficiency', 'Self-sufficiency (use met by generation)', pctText(f.selfSufficiency)))),
    h('section.card', h('h2', 'Where the energy went'), flowBars('Energy flows', [
      ['gen-house', 'Generation → house', f.houseGenerated], ['gen-divert', 'Generation → diverter', Math.max(0, f.useGenerated - f.houseGenerated)],
      ['gen-grid', 'Generation → grid', f.export], ['grid-use', 'Grid → house and diverter', f.import]])));
}

async function shareCard(app) {
  const out = h('p');
  const embed = h('input', { type: 'checkbox', name: 'embed' });
  return h('section.card.no-print', h('h2', 'Share'),
    h('p.muted', 'A link that shows this app, and reads only its feeds: not your other feeds, inputs or account. Your account page lists your links and revokes them.'),
    h('label', embed, ' Let other sites show it in a frame (embedding)'),
    h('button', {
      type: 'button',
      onclick: async () => {
        try {
          const link = await get('share/create.json', { app: app.id, label: app.name, embed: embed.checked ? 1 : 0 });
          const url = `${location.origin}/app/apps?id=${app.id}&share=${link.token}`;
          clear(out, h('code', { id: 'share-url' }, url));
        } catch (e) { toast(e.message, 'error'); }
      },
    }, 'Make a share link'), out);
}

async function showApp(body, app, q, owner, params = new URLSearchParams()) {
  const type = TYPES[app.app];
  const view = h('div');
  const parts = [h('h2', app.name), view];
  clear(body, parts);
  if (!type?.drawn) {
    clear(view, h('p', `ynni does not draw ${type?.title || app.app} yet; its configuration is kept and served by app/getconfig.`));
  } else {
    const draw = {
      mysolarpv: mySolar, mysolarpvbattery: mySolarBattery, mysolarpvdivert: mySolarDivert, myheatpump: myHeatpump,
    }[app.app] || myElectric;
    try { await draw(view, app, q, params); } catch (e) { clear(view, h('p.error', e.message)); }
  }
  if (owner) {
    const feeds = await get('feed/list.json');
    body.append(configForm(app, feeds, async () => {
      const fresh = await get('app/getconfig.json', { id: app.id });
      await showApp(body, fresh, q, owner, params);
    }), await shareCard(app));
  }
}

export async function render(main, ctx) {
  const token = ctx.params.get('share');
  const body = h('div');
  main.append(h('h1', 'Apps'), body);
  if (token) {
    // A share link: one app, read-only, its feeds through the token.
    const q = { share: token };
    const app = await get('app/getconfig.json', { id: ctx.params.get('id'), ...q });
    await showApp(body, app, q, false, ctx.params);
    return;
  }
  const apps = await get('app/list.json');
  const wanted = ctx.params.get('name');
  const typeSel = h('select', { name: 'app' }, Object.entries(TYPES).map(([k, t]) => h('option', { value: k }, t.title)));
  const name = h('input', { name: 'name', required: true });
  const shown = h('div');
  const list = h('nav.app-list', { 'aria-label': 'Your apps' }, apps.map((a) => h('a', { href: `/app/apps?name=${encodeURIComponent(a.name)}` }, a.name)));
  main.insertBefore(h('div.toolbar', list), body);
  body.append(shown, h('form.card.no-print', {
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await post('app/add.json', { app: typeSel.value, name: name.value.trim() });
        if (typeof r === 'string') throw new Error(r);
        location.href = `/app/apps?name=${encodeURIComponent(name.value.trim())}`;
      } catch (err) { toast(err.message, 'error'); }
    },
  }, h('h2', 'New app'), field('Type', typeSel), field('Name', name), h('button.primary', { type: 'submit' }, 'Add app')));
  const chosen = apps.find((a) => a.name === wanted) || apps[0];
  if (chosen) {
    const app = await get('app/getconfig.json', { id: chosen.id });
    await showApp(shown, app, {}, true, ctx.params);
  }
}
