// Unit tests of the UI's pure helpers (node --test web/ui/test); the pages themselves are
// tested in chromium by tests/e2e/browser.rs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ago, ageClass, fmtValue, fmtBytes } from '../src/js/dom.js';
import { fmtInterval, isCumulative } from '../src/js/feedmeta.js';
import { safeNext } from '../src/js/pages/login.js';
import { timeFormats, tickLabels, placeLabels } from '../src/js/pages/graph/timeaxis.js';

const ORIGIN = 'http://pi.local:8080';
const next = (n) => safeNext(new URLSearchParams({ next: n }), ORIGIN);

test('after login only views of this site are followed', () => {
  assert.equal(next('/app/graph?feeds=1,2&start=5'), '/app/graph?feeds=1,2&start=5');
  assert.equal(next('/app/process?input=3'), '/app/process?input=3');
  for (const bad of ['/app/../feed/delete.json?id=1', '/app/%2e%2e/user/newapikeywrite.json',
    'https://evil.example/app/inputs', '//evil.example/app/inputs', 'javascript:alert(1)',
    '/feed/set.json?id=1', '']) {
    assert.equal(next(bad), '/app/inputs', bad);
  }
});

test('ages and their freshness', () => {
  assert.equal(ago(1000, 1012), '12 s ago');
  assert.equal(ago(1000, 1000 + 300), '5 min ago');
  assert.equal(ago(1000, 1000 + 7200), '2 h ago');
  assert.equal(ago(1000, 1000 + 3 * 86400), '3 d ago');
  assert.equal(ago(0, 5), 'never');
  assert.equal(ageClass(1000, 1010), 'age-live');
  assert.equal(ageClass(1000, 1100), 'age-stale');
  assert.equal(ageClass(1000, 9000), 'age-dead');
});

test('values, sizes and intervals read naturally', () => {
  assert.equal(fmtValue(null), '—');
  assert.equal(fmtValue(12.5), '12.5');
  assert.equal(fmtValue(3), '3');
  assert.equal(fmtValue(0), '0');
  assert.equal(fmtValue(800, 0), '800');
  assert.equal(fmtValue(800), '800');
  assert.equal(fmtValue(10.5), '10.5');
  assert.equal(fmtValue(-20), '-20');
  assert.equal(fmtValue(1234.56), '1235');
  assert.equal(fmtBytes(512), '512 B');
  assert.equal(fmtBytes(12.6 * 1024 * 1024), '12.6 MiB');
  assert.equal(fmtInterval(10), '10 s');
  assert.equal(fmtInterval(300), '5 min');
  assert.equal(fmtInterval(5400), '1.5 h');
  assert.equal(fmtInterval(86400), '1 d');
  assert.equal(fmtInterval(0), '');
  assert.ok(isCumulative('kWh') && isCumulative(' wh') && !isCumulative('W'));
});

test('graph times read in ISO order, in the zone of the account', () => {
  const london = timeFormats({ timezone: 'Europe/London' });
  const feb = Date.UTC(2026, 1, 12, 9, 5, 7);
  assert.equal(london.tz, 'Europe/London');
  assert.equal(london.long.format(feb), '2026-02-12 09:05:07');
  assert.equal(london.short.format(feb), '2026-02-12 09:05');
  assert.equal(london.day.format(feb), '2026-02-12');
  assert.equal(london.month.format(feb), '2026-02');
  // British Summer Time: an hour ahead of UTC, past midnight into the next day.
  assert.equal(london.short.format(Date.UTC(2026, 6, 1, 23, 30)), '2026-07-02 00:30');
  assert.equal(timeFormats({ timezone: 'UTC' }).short.format(Date.UTC(2026, 6, 1, 0, 0)), '2026-07-01 00:00');
  assert.equal(timeFormats({ timezone: 'Not/AZone' }).tz, null);
});

test('time-axis labels: times with the date where the day changes, then dates, months, years', () => {
  const { parts } = timeFormats({ timezone: 'Europe/London' });
  const h = (d, hour) => Date.UTC(2026, 1, d, hour) / 1000;
  const lines = (splits, incr) => tickLabels(splits, incr, parts).map((l) => l.lines);
  assert.deepEqual(lines([h(12, 22), h(12, 23), h(13, 0), h(13, 1)], 3600),
    [['22:00', '2026-02-12'], ['23:00'], ['00:00', '2026-02-13'], ['01:00']]);
  assert.deepEqual(lines([h(12, 22) + 30], 30), [['22:00:30', '2026-02-12']]);
  assert.deepEqual(lines([h(12, 0), h(13, 0)], 86400), [['2026-02-12'], ['2026-02-13']]);
  assert.deepEqual(lines([h(1, 0)], 30 * 86400), [['2026-02']]);
  assert.deepEqual(lines([Date.UTC(2026, 0, 1) / 1000], 365 * 86400), [['2026']]);
  assert.deepEqual(lines([Date.UTC(2026, 6, 1, 23) / 1000], 3600), [['00:00', '2026-07-02']]);
});

test('time-axis labels stay inside the canvas and never overlap', () => {
  const width = 260;
  const placed = placeLabels(
    [{ x: 5, w: 60 }, { x: 100, w: 60 }, { x: 195, w: 60 }, { x: 250, w: 60 }], width, 10);
  // The first is moved right to the edge, the last would then touch its neighbour.
  assert.deepEqual(placed.map((p) => p.left), [0, 70, 165]);
  for (const p of placed) assert.ok(p.left >= 0 && p.left + p.w <= width, JSON.stringify(p));
  // Alone at the right edge, a label is moved left rather than left out.
  assert.deepEqual(placeLabels([{ x: 255, w: 60 }], width, 10).map((p) => p.left), [200]);
  // Wider than the canvas: starts at its left edge.
  assert.deepEqual(placeLabels([{ x: 20, w: 300 }], width, 10).map((p) => p.left), [0]);
});

test('money and standing read as a customer expects', async () => {
  const { pounds, standingNotice } = await import('../src/js/money.js');
  assert.equal(pounds(150), '£1.50');
  assert.equal(pounds(-40), '−£0.40');
  assert.equal(pounds(5), '£0.05');
  assert.equal(pounds(0), '£0.00');
  assert.equal(standingNotice({ standing: { state: 'good' } }), null);
  assert.match(standingNotice({ balance_pence: 60, standing: { state: 'low', runway_days: 3 } }).text, /about 3 more days/);
  assert.match(standingNotice({ balance_pence: -4, standing: { state: 'grace', until: '2026-12-09' } }).text, /until 2026-12-09/);
  const s = standingNotice({ balance_pence: -120, standing: { state: 'suspended' } });
  assert.equal(s.kind, 'error');
  assert.match(s.text, /refused until you top up/);
});

test('My Electric sums the days of this week, month and year', async () => {
  const { dailyFigures } = await import('../src/js/pages/apps/figures.js');
  // Wednesday 2026-03-04 at noon, local time; days from 2025-12-31 to today, 2 kWh each.
  const now = new Date(2026, 2, 4, 12);
  const data = [];
  for (let d = new Date(2025, 11, 31); d <= now; d.setDate(d.getDate() + 1)) data.push([d.getTime(), 2]);
  const f = dailyFigures(data, now);
  assert.equal(f.today, 2);
  assert.equal(f.week, 3 * 2, 'Monday to Wednesday');
  assert.equal(f.month, 4 * 2);
  assert.equal(f.year, (31 + 28 + 4) * 2);
  assert.equal(dailyFigures([], now).today, 0);
  assert.equal(f.monthLastYear, null, 'no data a year ago');
  // 2025-03-01 to 2025-03-04 at 3 kWh a day, then the rest of March at 10.
  const ly = [];
  for (let d = new Date(2025, 2, 1); d < new Date(2025, 3, 1); d.setDate(d.getDate() + 1)) {
    ly.push([d.getTime(), d.getDate() <= 4 ? 3 : 10]);
  }
  assert.equal(dailyFigures(ly.concat(data), now).monthLastYear, 12, 'the same four days');
});

test('My Solar splits use into solar and grid, generation into house and export', async () => {
  const { solarFigures, graphInterval } = await import('../src/js/pages/apps/solar.js');
  const t = (m) => m * 60000;
  // Two minutes of 1000 W use under 1500 W solar, one of 800 W at night (5 W of inverter noise).
  const use = [[t(0), 1000], [t(1), 1000], [t(2), 800], [t(3), null]];
  const solar = [[t(0), 1500], [t(1), 1500], [t(2), 5], [t(3), 2000]];
  const f = solarFigures(use, solar, 60);
  const near = (a, b) => assert.ok(Math.abs(a - b) < 1e-9, `${a} vs ${b}`);
  near(f.use, (2 * 1000 + 800) / 60000);
  near(f.solar, 3000 / 60000);
  near(f.direct, 2000 / 60000);
  near(f.export, 1000 / 60000);
  near(f.import, 800 / 60000);
  near(f.selfConsumption, 100 * 2000 / 3000);
  near(f.selfSufficiency, 100 * 2000 / 2800);
  assert.equal(solarFigures([], [], 60).selfConsumption, null);
  assert.equal(graphInterval(86400), 60);
  assert.equal(graphInterval(3600), 5);
  assert.equal(graphInterval(7 * 86400), 600);
});

test('My Heatpump: COP per day, SCOP as total heat over total electricity', async () => {
  const { heatpumpDays } = await import('../src/js/pages/apps/heatpump.js');
  const day = (n) => new Date(2026, 0, n).getTime();
  const elec = [[day(1), 10], [day(2), 5], [day(3), null], [day(4), 0]];
  const heat = [[day(1), 30], [day(2), 20], [day(3), 12], [day(4), 0]];
  const out = [[day(1), 2.5], [day(2), 7]];
  const f = heatpumpDays(elec, heat, out);
  assert.equal(f.days[0].cop, 3);
  assert.equal(f.days[1].cop, 4);
  assert.equal(f.days[2].cop, null);
  assert.equal(f.days[3].cop, null, 'no electricity, no COP');
  assert.equal(f.days[1].outside, 7);
  assert.equal(f.scop, 50 / 15, 'not the mean of 3 and 4');
});
