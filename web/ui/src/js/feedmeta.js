// What the pages share about feeds: engine names, the engines and intervals a new feed may
// have, and how intervals read.

export const ENGINE_VIRTUAL = 7;

export const ENGINE_NAMES = {
  0: 'Variable interval (MySQL in emoncms, a PHPTimeSeries file here)',
  2: 'PHPTimeSeries (variable interval)',
  5: 'PHPFina (fixed interval)',
  7: 'Virtual',
  8: 'MySQL memory',
  10: 'Cassandra',
};

/** Short engine names for tables. */
export const ENGINE_SHORT = { 0: 'Variable', 2: 'PHPTimeSeries', 5: 'PHPFina', 7: 'Virtual' };

/** Engines this server creates feeds in, in the order offered. */
export const CREATABLE_ENGINES = [5, 2, 0];

/** Engines whose feeds have a fixed interval (chosen at creation). */
export const FIXED_INTERVAL_ENGINES = new Set([5]);

export const INTERVALS = [5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 86400];
export const DEFAULT_INTERVAL = 10;

const HOUR = 3600;
const DAY = 86400;

/** "10 s", "2 min", "1.5 h", "3 d". */
export function fmtInterval(s) {
  s = Number(s);
  if (!Number.isFinite(s) || s <= 0) return '';
  if (s >= DAY && s % (DAY / 4) === 0) return `${s / DAY} d`;
  if (s >= HOUR && s % (HOUR / 4) === 0) return `${s / HOUR} h`;
  if (s >= 60 && s % 30 === 0) return `${s / 60} min`;
  return `${s} s`;
}

/** Cumulative energy units, whose differences are energy per period. */
export function isCumulative(unit) {
  return /^k?wh$/i.test(String(unit || '').trim());
}
