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
