// Building the page. Text always goes in through textContent (never innerHTML), so names,
// descriptions and tags typed by users can never become markup: emoncms had stored XSS here.

/** h('button.primary', {onclick, type: 'submit'}, 'Save', child, ...) */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  // Anything but a plain object in the attributes place is the first child (0 included).
  if (attrs !== null && attrs !== undefined
      && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  // Header cells head their column unless told otherwise (screen readers read them with
  // each cell).
  if (name === 'th' && !el.hasAttribute('scope')) el.setAttribute('scope', 'col');
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form field; `input` is an element made with h(). */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div.field', h('label', { for: id }, label), input, hint ? h('small.muted', hint) : null);
}

let toastTimer;
/** A short message for screen readers and eyes; `kind` is 'ok' or 'error'. */
export function toast(message, kind = 'ok') {
  const t = document.getElementById('toast');
  if (!t) return;
  // Errors interrupt (alert); confirmations wait their turn (status).
  t.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  t.textContent = message;
  t.className = `show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = ''; }, kind === 'error' ? 6000 : 2500);
}

/** "12 s ago", "3 min ago", "5 h ago", "2 d ago"; `now` and `t` in Unix seconds. */
export function ago(t, now = Date.now() / 1000) {
  if (!t) return 'never';
  const s = Math.max(0, Math.round(now - t));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** Freshness class for a value's age, as emoncms colours its "updated" column. */
export function ageClass(t, now = Date.now() / 1000) {
  if (!t) return 'age-dead';
  const s = now - t;
  if (s < 25) return 'age-live';
  if (s < 3600) return 'age-stale';
  return 'age-dead';
}

export function fmtValue(v, dp = 2) {
  if (v === null || v === undefined || v === '') return '—';
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  if (Math.abs(n) >= 1000 || dp === 0) return n.toFixed(0);
  // Trailing zeros of the decimals only: 12.50 → 12.5, 3.00 → 3 (never 800 → 8).
  return n.toFixed(dp).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '') || '0';
}

export function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n) || 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** Ask before something that cannot be undone; resolves true when confirmed. */
export function confirmAction(message) {
  return Promise.resolve(window.confirm(message));
}
