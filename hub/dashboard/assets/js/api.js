// The hub's /api/v1 seen from the browser: bearer token from localStorage, JSON in and out,
// errors as ApiError carrying the hub's {"error":{"code","message"}}.

const TOKEN_KEY = "wangge.token";
/** Most pages `all()` follows; beyond it the view says the list was cut. */
export const PAGES_MAX = 20;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}
export function setToken(t) {
  if (t) localStorage.setItem(TOKEN_KEY, t);
  else localStorage.removeItem(TOKEN_KEY);
}

let onUnauthorized = () => {};
/** Called on any 401: the token is wrong or revoked, so the app goes back to sign-in. */
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

export function url(path, query) {
  const u = new URL("/api/v1/" + path.replace(/^\//, ""), location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u;
}

export async function request(method, path, { query, body } = {}) {
  const headers = { Authorization: "Bearer " + token() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network", String(e.message || e));
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    const e = new ApiError(resp.status, err.code || String(resp.status), err.message || text || resp.statusText);
    // A 409 on a transition lists the actions the event's state allows.
    e.allowed = Array.isArray(err.allowed) ? err.allowed : null;
    if (resp.status === 401) onUnauthorized(e);
    throw e;
  }
  return data;
}

export const get = (path, query) => request("GET", path, { query });
export const post = (path, body) => request("POST", path, { body });

/** Follows `next` cursors; returns {items, cut} where cut says PAGES_MAX stopped it. */
export async function all(path, query = {}) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < PAGES_MAX; i++) {
    const page = await get(path, { ...query, limit: 1000, cursor });
    items.push(...(page.items || []));
    cursor = page.next;
    if (!cursor) return { items, cut: false };
  }
  return { items, cut: true };
}

let departmentsCache = null;
/**
 * The registry's departments [{id, name, …}], fetched once per sign-in; [] when the hub
 * does not serve them (callers fall back to what they know).
 */
export async function departments() {
  if (!departmentsCache) {
    departmentsCache = all("departments").then((r) => r.items).catch(() => []);
  }
  return departmentsCache;
}
let gridCellsCache = null;
/** The registry's grid cells [{id, name, …}], fetched once per sign-in; [] when not served. */
export async function gridCells() {
  if (!gridCellsCache) {
    gridCellsCache = all("grid_cells").then((r) => r.items).catch(() => []);
  }
  return gridCellsCache;
}
/** Forgets the registry lists cached for the signed-in token. */
export function forgetDepartments() {
  departmentsCache = null;
  gridCellsCache = null;
}
