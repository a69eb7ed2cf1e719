// My Heatpump's daily figures from daily reads ([[ms, value], …]): electricity in and heat out
// (daily deltas of cumulative kWh feeds), their ratio per day (COP) and over the period
// (SCOP: total heat over total electricity, not a mean of daily COPs), and the day's mean
// outside temperature when there is one.

function ymd(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

const num = (v) => (v === null || v === undefined ? null : Number(v));

export function heatpumpDays(elec, heat, outside) {
  const heatAt = new Map((heat || []).map(([t, v]) => [t, num(v)]));
  const outAt = new Map((outside || []).map(([t, v]) => [t, num(v)]));
  let elecSum = 0;
  let heatSum = 0;
  const days = (elec || []).map(([t, v]) => {
    const e = num(v);
    const q = heatAt.get(t) ?? null;
    if (e !== null && q !== null && e > 0) {
      elecSum += e;
      heatSum += q;
    }
    return {
      date: ymd(new Date(t)),
      elec: e,
      heat: q,
      cop: e !== null && q !== null && e > 0 ? q / e : null,
      outside: outAt.get(t) ?? null,
    };
  });
  return { days, elec: elecSum, heat: heatSum, scop: elecSum > 0 ? heatSum / elecSum : null };
}

/**
 * What the heat pump was doing through a day, from its electricity and heat power series
 * (W, same start and interval): `running` at or above `startingW` with heat coming out,
 * `defrost` when running with heat going the other way (a reverse cycle melts the outdoor
 * coil's ice and draws heat from the house), `standby` when powered below `startingW`, `off`
 * at 0 W, `none` where there is no data. Consecutive samples of one state form a period.
 */
export function heatpumpStates(elec, heat, intervalS, startingW = 150) {
  const heatAt = new Map((heat || []).map(([t, v]) => [t, num(v)]));
  const periods = [];
  const totals = { runningH: 0, standbyH: 0, standbyKwh: 0, defrosts: 0, defrostMin: 0, runElecKwh: 0, runHeatKwh: 0 };
  for (const [t, v] of elec || []) {
    const e = num(v);
    const q = heat ? heatAt.get(t) ?? null : null;
    let state = 'none';
    if (e !== null) {
      if (e >= startingW) state = q !== null && q < 0 ? 'defrost' : 'running';
      else state = e > 0 ? 'standby' : 'off';
    }
    const last = periods[periods.length - 1];
    if (last && last.state === state) last.to = t + intervalS * 1000;
    else {
      periods.push({ state, from: t, to: t + intervalS * 1000 });
      if (state === 'defrost') totals.defrosts += 1;
    }
    const h = intervalS / 3600;
    if (state === 'running') {
      totals.runningH += h;
      totals.runElecKwh += (e * h) / 1000;
      if (q !== null) totals.runHeatKwh += (q * h) / 1000;
    } else if (state === 'standby') {
      totals.standbyH += h;
      totals.standbyKwh += (e * h) / 1000;
    } else if (state === 'defrost') {
      totals.defrostMin += intervalS / 60;
    }
  }
  return { periods, ...totals, runningCop: totals.runElecKwh > 0 && heat ? totals.runHeatKwh / totals.runElecKwh : null };
}
