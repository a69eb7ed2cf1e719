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
