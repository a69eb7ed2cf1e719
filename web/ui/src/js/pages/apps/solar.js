// My Solar's figures from two power series (W) read with the same start and interval:
// [[ms, W|null], …]. As emoncms's mysolarpv computes them: solar below `floorW` counts as
// none; per sample, what the house used of its solar is min(use, solar); energy is Σ P·Δt.

const KWH = 3.6e6;

export function solarFigures(use, solar, intervalS, floorW = 10) {
  const solarAt = new Map((solar || []).map(([t, v]) => [t, v]));
  let useKwh = 0;
  let solarKwh = 0;
  let directKwh = 0;
  for (const [t, u] of use || []) {
    let s = solarAt.get(t);
    if (u === null || u === undefined || s === null || s === undefined) continue;
    if (s < floorW) s = 0;
    const uw = Math.max(0, u);
    useKwh += (uw * intervalS) / KWH;
    solarKwh += (s * intervalS) / KWH;
    directKwh += (Math.min(uw, s) * intervalS) / KWH;
  }
  const importKwh = useKwh - directKwh;
  const exportKwh = solarKwh - directKwh;
  const pct = (a, b) => (b > 0 ? (100 * a) / b : null);
  return {
    use: useKwh,
    solar: solarKwh,
    direct: directKwh,
    import: importKwh,
    export: exportKwh,
    // Of the solar generated, the share used in the house; of the house's use, the share solar met.
    selfConsumption: pct(directKwh, solarKwh),
    selfSufficiency: pct(directKwh, useKwh),
  };
}

/** emoncms's graph interval for a span: span/1500 s, snapped up to a round step, at least 5 s. */
export function graphInterval(spanS) {
  const steps = [5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10800,
    14400, 18000, 21600, 43200, 86400, 129600, 172800, 259200];
  const want = Math.round(spanS / 1500);
  return steps.find((s) => s >= want) ?? steps[steps.length - 1];
}

function ymd(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/**
 * My Solar's history from daily deltas of its three cumulative kWh feeds, as emoncms's
 * mysolarpv computes it: export = solar − (use − import), solar used here = solar − export.
 * Days missing any of the three are left out of the totals.
 */
export function solarDays(useKwh, solarKwh, importKwh) {
  const at = (series) => new Map((series || []).map(([t, v]) => [t, v === null || v === undefined ? null : Number(v)]));
  const solarAt = at(solarKwh);
  const importAt = at(importKwh);
  const totals = { use: 0, solar: 0, import: 0, export: 0, direct: 0 };
  const days = (useKwh || []).map(([t, u]) => {
    const use = u === null || u === undefined ? null : Number(u);
    const solar = solarAt.get(t) ?? null;
    const imp = importAt.get(t) ?? null;
    if (use === null || solar === null || imp === null) return { date: ymd(new Date(t)), use, solar, import: imp, export: null, direct: null };
    const exp = Math.max(0, solar - (use - imp));
    const direct = Math.max(0, solar - exp);
    totals.use += use;
    totals.solar += solar;
    totals.import += imp;
    totals.export += exp;
    totals.direct += direct;
    return { date: ymd(new Date(t)), use, solar, import: imp, export: exp, direct };
  });
  const pct = (a, b) => (b > 0 ? (100 * a) / b : null);
  return { days, ...totals, selfConsumption: pct(totals.direct, totals.solar), selfSufficiency: pct(totals.direct, totals.use) };
}
