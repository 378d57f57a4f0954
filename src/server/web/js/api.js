// The REST API (/api/v1) as the dashboard uses it: the session cookie authenticates, and
// every mutating request carries the session's CSRF token, as the server requires.

let csrfToken = null;
export let session = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`/api/v1${path}`, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: reported below */ }
  if (!res.ok) {
    const e = json?.error;
    const err = new ApiError(res.status, e?.code ?? `http-${res.status}`, e?.message ?? `${method} ${path}: HTTP ${res.status}`);
    if (res.status === 401 && path !== '/session') window.dispatchEvent(new CustomEvent('vmbkp-unauthenticated'));
    throw err;
  }
  return json;
}

/** Starts a job (POST /jobs) and shows its page, where its progress and log follow. */
export async function startJob(body) {
  const { id } = await api('POST', '/jobs', body);
  location.hash = `#/job/${encodeURIComponent(id)}`;
}

export async function loadSession() {
  try {
    session = await api('GET', '/session');
    csrfToken = session.csrfToken;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { session = null; csrfToken = null; return null; }
    throw err;
  }
  return session;
}

export async function login(user, password) {
  session = await api('POST', '/session', { user, password });
  csrfToken = session.csrfToken;
  return session;
}

export async function logout() {
  try { await api('DELETE', '/session'); } finally { session = null; csrfToken = null; }
}

/** Operators and admins start jobs and restores; viewers only look. */
export function canOperate() {
  return session?.role === 'operator' || session?.role === 'admin';
}
