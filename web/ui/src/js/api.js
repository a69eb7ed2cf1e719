// The emoncms HTTP API, as the pages use it: the login session cookie goes with every
// request (same origin), parameters go in the query string for reads and in a form body for
// changes, and a reply of {success:false, message} becomes a thrown ApiError.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/**
 * emoncms's bare `false`: a refusal that gives no reason. It means "no such item" or "not
 * logged in" to most actions, and "not offered here" to some (user/register.json when the
 * server takes no new accounts), so a page that knows which can say so.
 */
export class FalseReply extends ApiError {
  constructor() {
    super('Not found, or the session has ended', 404);
  }
}

async function parse(res) {
  const text = await res.text();
  if (res.status === 401 || res.status === 403) throw new ApiError(text || 'Not logged in', res.status);
  if (!res.ok) throw new ApiError(text || `HTTP ${res.status}`, res.status);
  let body;
  try { body = JSON.parse(text); } catch { return text; }
  if (body && typeof body === 'object' && !Array.isArray(body) && body.success === false) {
    throw new ApiError(body.message || 'The server refused the request', res.status);
  }
  if (body === false) throw new FalseReply();
  return body;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null) continue;
    q.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** GET `/<path>` with `params` in the query string. */
export async function get(path, params) {
  const res = await fetch(`/${path}${query(params)}`, { credentials: 'same-origin' });
  return parse(res);
}

/** POST `/<path>` with `params` as a urlencoded form body. */
export async function post(path, params, queryParams) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null) continue;
    body.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  const res = await fetch(`/${path}${query(queryParams)}`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body,
  });
  return parse(res);
}

/** The logged-in user's account (`user/get.json`), or null when not logged in. */
export async function currentUser() {
  try {
    const u = await get('user/get.json');
    if (!u || typeof u !== 'object' || !u.username) return null;
    const session = await get('user/session.json');
    return { ...u, admin: session && session.admin === true };
  } catch (e) {
    if (e instanceof ApiError && [401, 403, 404].includes(e.status)) return null;
    throw e;
  }
}

/**
 * Live updates: `onEvent(kind, data)` for 'input', 'feed' and 'resync' events of the
 * logged-in user, 'open' / 'error' when the connection opens or drops (the browser
 * reconnects), and 'closed' when the server refused it (log in again). Returns a function that closes the stream.
 */
export function live(onEvent) {
  const es = new EventSource('/ynni/live');
  for (const kind of ['input', 'feed', 'resync']) {
    es.addEventListener(kind, (e) => {
      let data = {};
      try { data = JSON.parse(e.data); } catch { /* keep {} */ }
      onEvent(kind, data);
    });
  }
  es.onopen = () => onEvent('open', {});
  // The browser reconnects by itself; 'error' lets a page say so meanwhile.
  // A stream the server refused (the session ended) is closed for good: 'closed'.
  es.onerror = () => onEvent(es.readyState === EventSource.CLOSED ? 'closed' : 'error', {});
  return () => es.close();
}
