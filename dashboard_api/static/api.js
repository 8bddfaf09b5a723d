// The API client: same origin, session cookies, CSRF double submit on every write, one
// refresh attempt when the short-lived access cookie has run out.
const PREFIX = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

function csrf() {
  const match = document.cookie.match(/(?:^|;\s*)vg_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** Whether a login session exists (the CSRF cookie lives as long as the refresh token). */
export function hasSession() {
  return csrf() !== "";
}

async function send(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(PREFIX + path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

let refreshing = null;

/** Exchange the refresh cookie for a new session; false when there is none. */
export async function refresh() {
  if (!refreshing) {
    refreshing = send("POST", "/auth/refresh", {}).then((r) => r.ok).finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** A JSON call; throws ApiError on any non-2xx answer. */
export async function api(method, path, body) {
  let response = await send(method, path, body);
  if (response.status === 401 && !path.startsWith("/auth/") && (await refresh())) {
    response = await send(method, path, body);
  }
  if (!response.ok) {
    let detail = null;
    try {
      detail = (await response.json()).detail;
    } catch {
      detail = null;
    }
    throw new ApiError(response.status, detail);
  }
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const del = (path) => api("DELETE", path);

/** The live stream; ``onReading`` gets each reading event's data, ``onAlert`` each alert
 * change's (ids, rule, severity, state). Reopens after errors. */
export function openStream(onReading, onAlert, onState) {
  let source = null;
  let closed = false;
  let delay = 1000;
  const open = () => {
    if (closed) return;
    source = new EventSource(PREFIX + "/stream");
    source.addEventListener("open", () => {
      delay = 1000;
      onState(true);
    });
    source.addEventListener("reading", (event) => onReading(JSON.parse(event.data)));
    source.addEventListener("alert", (event) => onAlert(JSON.parse(event.data)));
    source.addEventListener("error", async () => {
      source.close();
      onState(false);
      if (closed) return;
      await refresh();
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 60000);
    });
  };
  open();
  return () => {
    closed = true;
    if (source) source.close();
  };
}
