// My Electric's time-of-use tariffs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBands, priceAt, costByDay } from '../src/js/pages/apps/tariff.js';

test('bands are read, and a bad one is named', () => {
  assert.deepEqual(parseBands('00:00-07:00=0.075, 07:00-24:00=0.2867'),
    [{ from: 0, to: 420, price: 0.075 }, { from: 420, to: 1440, price: 0.2867 }]);
  assert.deepEqual(parseBands(''), []);
  assert.throws(() => parseBands('7-24=0.2'), /7-24=0.2/);
  assert.throws(() => parseBands('00:00-07:75=0.1'), /07:75/);
});

test('a band may run past midnight; hours in no band cost the flat rate', () => {
  const bands = parseBands('23:30-05:30=0.07, 16:00-19:00=0.40');
  assert.equal(priceAt(bands, 23 * 60 + 45, 0.25), 0.07);
  assert.equal(priceAt(bands, 2 * 60, 0.25), 0.07);
  assert.equal(priceAt(bands, 5 * 60 + 30, 0.25), 0.25);
  assert.equal(priceAt(bands, 17 * 60, 0.25), 0.4);
});

test('each day costs its hours at their band\'s price', () => {
  process.env.TZ = 'UTC';
  const day = Date.UTC(2026, 11, 3);
  const hours = Array.from({ length: 24 }, (_, h) => [day + h * 3600000, 0.5]);
  const cost = costByDay(hours, parseBands('00:00-07:00=0.06, 07:00-24:00=0.20'), 0.15);
  assert.ok(Math.abs(cost.get('2026-12-03') - 1.91) < 1e-9, String(cost.get('2026-12-03')));
});

test('days add up into weeks from Monday and into months', async () => {
  process.env.TZ = 'UTC';
  const { groupDays } = await import('../src/js/pages/apps/figures.js');
  // Fri 2026-11-27 … Wed 2026-12-02, 1 kWh a day, none on Sunday the 29th.
  const days = [27, 28, 29, 30, 31, 32].map((n) => {
    const time = Date.UTC(2026, 10, n);
    const d = new Date(time);
    return { date: d.toISOString().slice(0, 10), time, kwh: n === 29 ? null : 1 };
  });
  const weeks = groupDays(days, 'week', (d) => d.kwh * 0.2);
  assert.deepEqual(weeks.map((w) => [w.label, w.kwh]), [['2026-11-23', 2], ['2026-11-30', 3]]);
  assert.ok(Math.abs(weeks[1].cost - 0.6) < 1e-9);
  assert.deepEqual(groupDays(days, 'month').map((m) => [m.label, m.kwh]), [['2026-11', 3], ['2026-12', 2]]);
});
