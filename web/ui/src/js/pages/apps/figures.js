// My Electric's figures from `feed/data.json?interval=daily&delta=1` of a cumulative kWh feed:
// [[ms at the day's local midnight, kWh used that day], …]. Pure, so unit-tested in node.

function ymd(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/**
 * Today's kWh, this week's (from Monday), month's and year's, and every day by date; with
 * `costOf(day)`, each period's cost too (`todayCost`, `weekCost`, …).
 */
export function dailyFigures(data, now, costOf = () => 0) {
  const days = (Array.isArray(data) ? data : [])
    .map(([t, v]) => ({ date: ymd(new Date(t)), time: t, kwh: v === null || v === undefined ? null : Number(v) }));
  const today = ymd(now);
  const monday = new Date(now);
  monday.setHours(0, 0, 0, 0);
  monday.setDate(monday.getDate() - ((monday.getDay() + 6) % 7));
  const monthStart = new Date(now.getFullYear(), now.getMonth(), 1).getTime();
  const yearStart = new Date(now.getFullYear(), 0, 1).getTime();
  const sum = (from) => days.filter((d) => d.time >= from).reduce((s, d) => s + (d.kwh ?? 0), 0);
  const cost = (keep) => days.filter(keep).reduce((s, d) => s + costOf(d), 0);
  // The same days of this month a year ago (1st to today's date), by calendar date.
  const lastYear = now.getFullYear() - 1;
  const from = ymd(new Date(lastYear, now.getMonth(), 1));
  const to = ymd(new Date(lastYear, now.getMonth(), now.getDate()));
  const sameDays = days.filter((d) => d.date >= from && d.date <= to);
  return {
    days,
    todayCost: cost((d) => d.date === today),
    weekCost: cost((d) => d.time >= monday.getTime()),
    monthCost: cost((d) => d.time >= monthStart),
    yearCost: cost((d) => d.time >= yearStart),
    monthLastYearCost: cost((d) => d.date >= from && d.date <= to),
    today: days.find((d) => d.date === today)?.kwh ?? 0,
    week: sum(monday.getTime()),
    month: sum(monthStart),
    year: sum(yearStart),
    // null when there is no data for those days (a feed younger than a year).
    monthLastYear: sameDays.some((d) => d.kwh !== null) ? sameDays.reduce((s, d) => s + (d.kwh ?? 0), 0) : null,
  };
}

/**
 * Days grouped into weeks (from Monday) or calendar months: [{label, kwh, cost}], oldest
 * first; `kwh` is null for a group with no data. `costOf(day)` prices a day.
 */
export function groupDays(days, by, costOf = () => 0) {
  const groups = new Map();
  for (const d of days) {
    const date = new Date(d.time);
    let label;
    if (by === 'month') {
      label = d.date.slice(0, 7);
    } else {
      const monday = new Date(date);
      monday.setDate(monday.getDate() - ((monday.getDay() + 6) % 7));
      label = ymd(monday);
    }
    const g = groups.get(label) ?? { label, kwh: null, cost: 0 };
    if (d.kwh !== null) g.kwh = (g.kwh ?? 0) + d.kwh;
    g.cost += d.kwh === null ? 0 : costOf(d);
    groups.set(label, g);
  }
  return [...groups.values()];
}
