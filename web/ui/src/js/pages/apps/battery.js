// My Solar with a battery, and with a diverter: energy flows from power series (W) read with
// the same start and interval, [[ms, W|null], …], as emoncms's mysolarpvbattery and
// mysolarpvdivert compute them. Below 10 W solar, charge, discharge, divert and wind count as
// none; a sample missing any series is skipped; energy is Σ P·Δt.

const KWH = 3.6e6;
const FLOOR_W = 10;

/** Samples of several series at the same times, each floored: [[a, b, …], …]. */
function aligned(series, floored) {
  const maps = series.slice(1).map((s) => new Map((s || []).map(([t, v]) => [t, v])));
  const out = [];
  for (const [t, first] of series[0] || []) {
    const row = [first, ...maps.map((m) => m.get(t))];
    if (row.some((v) => v === null || v === undefined)) continue;
    out.push(row.map((v, i) => (floored[i] && v < FLOOR_W ? 0 : Math.max(0, v))));
  }
  return out;
}

const pct = (a, b) => (b > 0 ? (100 * a) / b : null);

/**
 * `use` is the house without the battery's charging. An AC battery's charge and discharge pass
 * through the house's meter point; a DC one's do not (`isDc`).
 */
export function batteryFigures(use, solar, charge, discharge, intervalS, isDc = false) {
  const k = intervalS / KWH;
  const t = { use: 0, solar: 0, charge: 0, discharge: 0, import: 0, solarDirect: 0 };
  for (const [u, s, c, d] of aligned([use, solar, charge, discharge], [false, true, true, true])) {
    const balance = isDc ? s - u : s - u - c + d;
    t.use += u * k;
    t.solar += s * k;
    t.charge += c * k;
    t.discharge += d * k;
    t.import += Math.max(0, -balance) * k;
    t.solarDirect += Math.min(s, u) * k;
  }
  // Where each kWh went, as emoncms splits it.
  const importDirect = Math.max(0, t.use - t.discharge - t.solarDirect);
  const gridToBattery = Math.max(0, t.import - importDirect);
  const solarToBattery = Math.max(0, t.charge - gridToBattery);
  const solarExport = Math.max(0, t.solar - t.solarDirect - solarToBattery);
  return {
    ...t,
    importDirect,
    gridToBattery,
    solarToBattery,
    batteryToHouse: t.discharge,
    export: solarExport,
    selfConsumption: pct(t.solar - solarExport, t.solar),
    selfSufficiency: pct(t.use - importDirect, t.use),
  };
}

/** `use` includes what the diverter sends to the immersion heater (`divert`). */
export function divertFigures(use, solar, divert, intervalS, wind = null) {
  const k = intervalS / KWH;
  const t = { use: 0, gen: 0, divert: 0, useGenerated: 0, houseGenerated: 0 };
  const series = [use, solar, divert];
  if (wind) series.push(wind);
  for (const [u, s, dv, w = 0] of aligned(series, [false, true, true, true])) {
    const gen = s + w;
    const house = Math.max(0, u - dv);
    t.use += u * k;
    t.gen += gen * k;
    t.divert += dv * k;
    t.useGenerated += Math.min(u, gen) * k;
    t.houseGenerated += Math.min(house, gen) * k;
  }
  return {
    ...t,
    house: t.use - t.divert,
    export: t.gen - t.useGenerated,
    import: t.use - t.useGenerated,
    selfConsumption: pct(t.useGenerated, t.gen),
    selfSufficiency: pct(t.useGenerated, t.use),
  };
}
