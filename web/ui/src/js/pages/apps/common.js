// Small helpers the app views share.

import { h } from '../../dom.js';

/** Local midnight `days` days before today, in ms. */
export function midnight(days = 0) {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  d.setDate(d.getDate() - days);
  return d.getTime();
}

/** A feed id from an app config value (numbers and numeric strings both occur). */
export function feedId(v) {
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : null;
}

/** The day the page shows: `?day=YYYY-MM-DD`, else today; [start ms, end ms]. */
export function period(params) {
  const day = params.get('day');
  const start = day ? new Date(`${day}T00:00:00`).getTime() : midnight(0);
  if (!Number.isFinite(start)) return [midnight(0), Date.now()];
  return [start, day ? start + 86400000 : Date.now()];
}

export const kwhText = (v) => `${v.toFixed(1)} kWh`;
export const pctText = (v) => (v === null ? '— %' : `${v.toFixed(1)} %`);

/** A labelled figure of a `dl.facts`: the term and its value, the value findable by `id`. */
export const fact = (id, label, text) => [h('dt', label), h('dd', { id }, text)];
