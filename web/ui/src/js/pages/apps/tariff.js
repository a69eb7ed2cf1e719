// Time-of-use tariffs for My Electric: bands of the day with their price per kWh, written as
//   00:00-07:00=0.075, 07:00-24:00=0.2867
// (local time; a band may run past midnight, 23:30-05:30). Hours not in any band cost the
// flat unit cost. Pure, so unit-tested in node.

const TIME = /^(\d{1,2}):(\d{2})$/;

function minutes(text) {
  const m = TIME.exec(text.trim());
  if (!m) return null;
  const v = Number(m[1]) * 60 + Number(m[2]);
  return Number(m[2]) < 60 && v <= 1440 ? v : null;
}

/** The bands in `text`; throws an Error naming the first band it cannot read. */
export function parseBands(text) {
  const bands = [];
  for (const part of String(text || '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([\d:]+)\s*-\s*([\d:]+)\s*=\s*([\d.]+)$/.exec(part);
    const from = m && minutes(m[1]);
    const to = m && minutes(m[2]);
    const price = m && Number(m[3]);
    if (!m || from === null || to === null || from === to || !Number.isFinite(price)) {
      throw new Error(`Cannot read the tariff band "${part}": write it as 00:00-07:00=0.075`);
    }
    bands.push({ from, to, price });
  }
  return bands;
}

/** The price at `minute` of the day (0…1439), or `fallback`. */
export function priceAt(bands, minute, fallback) {
  for (const b of bands) {
    const inside = b.from < b.to ? minute >= b.from && minute < b.to : minute >= b.from || minute < b.to;
    if (inside) return b.price;
  }
  return fallback;
}

function ymd(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/**
 * The cost of each local day from kWh per step (`feed/data.json` with `delta=1` at a step of an
 * hour or less): Map date → cost, each step priced at its start.
 */
export function costByDay(steps, bands, fallback) {
  const out = new Map();
  for (const [t, kwh] of steps || []) {
    if (kwh === null || kwh === undefined) continue;
    const d = new Date(t);
    const price = priceAt(bands, d.getHours() * 60 + d.getMinutes(), fallback);
    const date = ymd(d);
    out.set(date, (out.get(date) ?? 0) + Number(kwh) * price);
  }
  return out;
}
