// The whole view lives in the address, so it can be bookmarked or shared:
//   /app/graph?feeds=1,2&right=2&start=<unix s>&end=<unix s>&avg=0&mode=daily&delta=1
// The state read from it is one object that the page changes in place; every other module
// of the graph reads it at the moment it needs it.

export const HOUR = 3600;
export const DAY = 86400;
export const MODES = ['none', 'daily', 'weekly', 'monthly'];

export const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));
export const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** Reads ?feeds=&right=&start=&end=&avg=&mode=&delta= against the feeds that exist. */
export function readParams(params, byId) {
  const list = (name) => (params.get(name) || '').split(',').map((s) => s.trim()).filter((id) => byId.has(id));
  const feeds = [...new Set(list('feeds'))];
  const right = new Set(list('right').filter((id) => feeds.includes(id)));
  let start = num(params.get('start'));
  let end = num(params.get('end'));
  if (start > 1e11) start /= 1000; // milliseconds, as data.json accepts
  if (end > 1e11) end /= 1000;
  const mode = MODES.includes(params.get('mode')) ? params.get('mode') : 'none';
  return {
    feeds,
    right,
    start: Number.isFinite(start) ? Math.round(start) : NaN,
    end: Number.isFinite(end) ? Math.round(end) : NaN,
    // Averaging is on unless the address turns it off: a sample per pixel of a long range
    // shows aliasing (one value every 12 h of a 10 s feed), the mean of each pixel does not.
    avg: params.get('avg') !== '0',
    mode,
    delta: params.get('delta') === '1',
  };
}

/** The query string that readParams reads back as `state`; defaults are left out to keep it short. */
export function queryOf(state) {
  const parts = [`feeds=${state.feeds.map(encodeURIComponent).join(',')}`];
  const right = state.feeds.filter((id) => state.right.has(id));
  if (right.length) parts.push(`right=${right.map(encodeURIComponent).join(',')}`);
  parts.push(`start=${state.start}`, `end=${state.end}`);
  if (!state.avg) parts.push('avg=0');
  if (state.mode !== 'none') parts.push(`mode=${state.mode}`);
  if (state.delta) parts.push('delta=1');
  return parts.join('&');
}

// replaceState, not pushState: a drag or a wheel turn would otherwise fill the back button
// with dozens of ranges.
export function writeUrl(state) {
  history.replaceState(history.state, '', `${location.pathname}?${queryOf(state)}`);
}

/** Feeds and axes and the bar mode: when any of these changes, the chart is built anew. */
export function signature(state) {
  return `${state.mode}|${state.feeds.map((id) => `${id}${state.right.has(id) ? 'R' : 'L'}`).join(',')}`;
}
