// The management API, as the UI's only source of data.
//
// Credentials live in sessionStorage (gone when the tab closes), never in a URL or a
// cookie: every request carries them in its Authorization header, which a page on
// another site cannot make the browser send.  X-Requested-With tells the server to
// answer a wrong password without WWW-Authenticate, so the browser shows our login
// form's message instead of its own prompt.

const KEY = "hutch.auth";

export class ApiError extends Error {
  constructor(status, error, reason) {
    super(plainWords(status, error, reason));
    this.status = status;
    this.error = error;
    this.reason = reason;
  }
}

// An API error in plain words: what happened first, then the broker's own text.
function plainWords(status, error, reason) {
  // RabbitMQ answers some refusals with a list, e.g. ["no_such_vhost", "billing"].
  const text = typeof reason === "string" ? reason
    : Array.isArray(reason) ? reason.map(String).join(": ") : JSON.stringify(reason);
  if (status === 0) return "The broker did not answer (is it running?): " + text;
  if (status === 401 && text === "Access refused.") {
    return "Not allowed: your user lacks the permission this needs in this virtual host "
      + "(configure, write or read; see Admin > Users). The broker said: Access refused.";
  }
  if (status === 401) return "Not allowed: " + text;
  if (status === 403) return "Refused: " + text;
  if (status === 404) return "Not found: " + text;
  if (status === 405) return "Not allowed here: " + text;
  if (status === 413) return "Too large: " + text;
  if (status >= 500) return "The broker failed (" + status + "): " + text;
  return text || error || ("HTTP " + status);
}

export function setCredentials(user, password) {
  // btoa wants Latin-1: encode UTF-8 first so non-ASCII passwords work.
  const bytes = new TextEncoder().encode(user + ":" + password);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  sessionStorage.setItem(KEY, btoa(bin));
}

export function clearCredentials() {
  sessionStorage.removeItem(KEY);
}

export function hasCredentials() {
  return sessionStorage.getItem(KEY) !== null;
}

// A path segment: names may hold any character, "/" and "%" included (vhost "/" is %2F).
// A queue named "." or ".." cannot be addressed from a browser (it resolves them as
// path steps, %2E%2E included, as the URL standard says); RabbitMQ's UI has the same
// limit, and the HTTP API reaches them from other clients.
export function esc(name) {
  return encodeURIComponent(name);
}

// path: "/api/..." with its segments already escaped; query: an object of parameters.
// headers: extra request headers (X-Reason when closing a connection); a header value
// must be Latin-1 without line breaks, refused here in words rather than by fetch().
export async function request(method, path, { query, body, raw, headers: extra } = {}) {
  let url = path;
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
    }
    const s = qs.toString();
    if (s) url += "?" + s;
  }
  for (const v of Object.values(extra || {})) {
    if (/[^\x20-\x7e\xa0-\xff]/.test(v)) {
      throw new ApiError(400, "bad_request", "a header may hold only Latin-1 characters, no line breaks");
    }
  }
  const headers = { "X-Requested-With": "XMLHttpRequest", ...(extra || {}) };
  const auth = sessionStorage.getItem(KEY);
  if (auth) headers["Authorization"] = "Basic " + auth;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "network", String(e.message || e));
  }
  if (raw && response.ok) return response;
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = text;
    }
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : "HTTP " + response.status;
    const reason = data && data.reason !== undefined ? data.reason : response.statusText;
    const err = new ApiError(response.status, error, reason);
    // "not_authorized" (z) is a failed login; "not_authorised" (s) a refused permission,
    // which stays on the page as an error.
    if (response.status === 401 && error === "not_authorized" && onUnauthorised) onUnauthorised(err);
    throw err;
  }
  return data;
}

let onUnauthorised = null;
// main.js: what to do when the stored credentials stop working (password changed,
// user deleted): back to the login form.
export function whenUnauthorised(fn) {
  onUnauthorised = fn;
}

export const get = (path, query) => request("GET", path, { query });
export const put = (path, body) => request("PUT", path, { body: body ?? {} });
export const post = (path, body) => request("POST", path, { body: body ?? {} });
export const del = (path, query, headers) => request("DELETE", path, { query, headers });

