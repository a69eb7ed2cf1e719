// My Solar with battery and with divert: flows from known power series.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batteryFigures, divertFigures } from '../src/js/pages/apps/battery.js';

/** An hour of 60 samples at 60 s of constant watts, from `h` hours. */
const hour = (h, w) => Array.from({ length: 60 }, (_, i) => [(h * 3600 + i * 60) * 1000, w]);
const hours = (...ws) => ws.flatMap((w, h) => hour(h, w));
const near = (a, b) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

test('an AC battery charged from solar by day and discharged at night', () => {
  // Two hours of 2000 W solar, 500 W house, 1000 W charging; two hours of 800 W at night from the battery.
  const f = batteryFigures(hours(500, 500, 800, 800), hours(2000, 2000, 0, 0), hours(1000, 1000, 0, 0), hours(0, 0, 800, 800), 60);
  near(f.solar, 4);
  near(f.use, 2.6);
  near(f.import, 0);
  near(f.solarDirect, 1);
  near(f.solarToBattery, 2);
  near(f.gridToBattery, 0);
  near(f.batteryToHouse, 1.6);
  near(f.export, 1);
  near(f.selfConsumption, 75);
  near(f.selfSufficiency, 100);
});

test('a battery charged from the grid counts as import, not solar', () => {
  // One hour: no solar, 300 W house, 1000 W charging from the grid.
  const f = batteryFigures(hour(0, 300), hour(0, 0), hour(0, 1000), hour(0, 0), 60);
  near(f.import, 1.3);
  near(f.gridToBattery, 1);
  near(f.solarToBattery, 0);
  near(f.importDirect, 0.3);
  near(f.selfSufficiency, 0);
  assert.equal(f.selfConsumption, null);
});

test('a diverter\'s heat is use met by solar, not export', () => {
  // One hour: 3000 W solar, 1000 W house plus 1500 W diverted.
  const f = divertFigures(hour(0, 2500), hour(0, 3000), hour(0, 1500), 60);
  near(f.gen, 3);
  near(f.house, 1);
  near(f.divert, 1.5);
  near(f.export, 0.5);
  near(f.import, 0);
  near(f.selfConsumption, (100 * 2.5) / 3);
});

test('samples under 10 W and gaps count as nothing', () => {
  const use = [[0, 100], [60000, null], [120000, 100]];
  const f = batteryFigures(use, [[0, 5], [60000, 500], [120000, 5]], [[0, 0], [60000, 0], [120000, 0]], [[0, 0], [60000, 0], [120000, 0]], 60);
  near(f.solar, 0);
  near(f.use, 200 * 60 / 3.6e6);
});

test('a heat pump\'s day: running, a defrost, standby', async () => {
  const { heatpumpStates } = await import('../src/js/pages/apps/heatpump.js');
  // Minutes at 60 s: 60 running, 10 defrosting, 50 running, 60 in standby at 20 W.
  const minute = (m) => m * 60000;
  const series = (f) => Array.from({ length: 180 }, (_, m) => [minute(m), f(m)]);
  const elec = series((m) => (m < 60 ? 1000 : m < 70 ? 800 : m < 120 ? 1000 : 20));
  const heat = series((m) => (m < 60 ? 3500 : m < 70 ? -500 : m < 120 ? 3500 : 0));
  const s = heatpumpStates(elec, heat, 60, 150);
  assert.deepEqual(s.periods.map((p) => [p.state, (p.to - p.from) / 60000]),
    [['running', 60], ['defrost', 10], ['running', 50], ['standby', 60]]);
  assert.equal(s.defrosts, 1);
  assert.equal(s.defrostMin, 10);
  near(s.runningH, 110 / 60);
  near(s.standbyKwh, 0.02);
  near(s.runningCop, 3.5);
});

test('My Solar\'s daily history from its kWh feeds', async () => {
  const { solarDays } = await import('../src/js/pages/apps/solar.js');
  const t = [0, 86400000];
  // Day 1: 10 kWh solar, 8 used, 3 imported: 5 of the solar used here, 5 exported. Day 2: no import data.
  const f = solarDays([[t[0], 8], [t[1], 5]], [[t[0], 10], [t[1], 2]], [[t[0], 3], [t[1], null]]);
  assert.deepEqual([f.days[0].export, f.days[0].direct, f.days[1].export], [5, 5, null]);
  assert.deepEqual([f.solar, f.use, f.selfConsumption, f.selfSufficiency], [10, 8, 50, 62.5]);
});
