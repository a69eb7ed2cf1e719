// Times as the graph shows them (axis, tooltip, legend, status line): ISO order, 24-hour
// clock, in the zone of the user's account, whatever the browser's language. A locale's
// short date puts the day or the month first, so 12/2/26 means a different day to a reader
// in London than to one in Boston; 2026-02-12 means one day to both.
// Intl does only the conversion into the zone (formatToParts); the layout is fixed here.
// Nothing here touches the page, so web/ui/test runs it under Node.

const DAY = 86400;

/** The widest tick label there is (UI fonts give all digits one width). */
export const WIDEST_TICK = '8888-88-88';

/** A timezone name that Intl accepts, or null (then the browser's own zone is used). */
function validZone(tz) {
  if (!tz || typeof tz !== 'string') return null;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz }).format(0);
    return tz;
  } catch {
    return null;
  }
}

/** (ms) => {year, month, day, hour, minute, second} in zone `tz`, each zero-padded. */
function partsIn(tz) {
  const f = new Intl.DateTimeFormat('en-GB', {
    ...(tz ? { timeZone: tz } : {}),
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  });
  return (ms) => {
    const p = {};
    for (const { type, value } of f.formatToParts(ms)) p[type] = value;
    // Some engine versions have written midnight as 24 on a 24-hour clock.
    if (p.hour === '24') p.hour = '00';
    p.year = String(p.year).padStart(4, '0');
    return p;
  };
}

const isoDate = (p) => `${p.year}-${p.month}-${p.day}`;

/**
 * The zone named in the user's account (`tz`, or null), its parts function, and the date
 * formats in it. Each format has `format(ms)`, as Intl's formatters do.
 */
export function timeFormats(user) {
  const tz = validZone(user && user.timezone);
  const parts = partsIn(tz);
  const fmt = (layout) => ({ format: (ms) => layout(parts(ms)) });
  return {
    tz,
    zoneName: tz || new Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time',
    parts,
    long: fmt((p) => `${isoDate(p)} ${p.hour}:${p.minute}:${p.second}`),
    short: fmt((p) => `${isoDate(p)} ${p.hour}:${p.minute}`),
    day: fmt(isoDate),
    month: fmt((p) => `${p.year}-${p.month}`),
  };
}

/**
 * The labels of the time axis's ticks at `splits` (unix seconds) `incr` seconds apart, as
 * [{at, lines}]. Ticks less than a day apart show the time, with the date under the first one
 * and wherever the day changes, so the date is always on screen without crowding the axis.
 */
export function tickLabels(splits, incr, parts) {
  let prevDate = '';
  const out = [];
  for (const at of splits) {
    if (at == null || !Number.isFinite(at)) continue;
    const p = parts(at * 1000);
    const date = isoDate(p);
    let lines;
    if (incr >= 365 * DAY) lines = [p.year];
    else if (incr >= 28 * DAY) lines = [`${p.year}-${p.month}`];
    else if (incr >= DAY) lines = [date];
    else {
      const time = incr < 60 ? `${p.hour}:${p.minute}:${p.second}` : `${p.hour}:${p.minute}`;
      lines = date === prevDate ? [time] : [time, date];
    }
    prevDate = date;
    out.push({ at, lines });
  }
  return out;
}

/**
 * Places labels `w` wide centred on their ticks at `x`, moved just far enough to lie wholly
 * within [0, width]. A label that would then come closer than `gap` to the one before it is
 * left out: a missing label reads better than two on top of each other. Returns the items
 * kept, each with its `left`.
 */
export function placeLabels(items, width, gap) {
  const out = [];
  let lastRight = -Infinity;
  for (const item of items) {
    const left = Math.min(Math.max(item.x - item.w / 2, 0), Math.max(0, width - item.w));
    if (left < lastRight + gap) continue;
    out.push({ ...item, left });
    lastRight = left + item.w;
  }
  return out;
}
