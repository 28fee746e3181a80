// The HTTP API, with the key the user typed (kept in sessionStorage: this tab, this session).
const KEY = "automations.apiKey";

export class Unauthorized extends Error {
  constructor() {
    super("this server needs a valid API key");
  }
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `request failed (${status})`);
    this.status = status;
    this.detail = detail;
  }
}

export function setApiKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function hasApiKey() {
  return sessionStorage.getItem(KEY) !== null;
}

// Tabs of this browser session share the key: a new tab asks the open ones for it before it
// asks the user (it stays in memory and sessionStorage only: never on disk, never a cookie).
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("automations.apiKey") : null;
tabs?.addEventListener("message", ({ data }) => {
  const key = sessionStorage.getItem(KEY);
  if (data === "ask" && key) tabs.postMessage({ key });
  else if (typeof data?.key === "string" && !key) sessionStorage.setItem(KEY, data.key);
});

export function borrowApiKey(waitMs = 300) {
  if (hasApiKey() || !tabs) return Promise.resolve(hasApiKey());
  return new Promise((resolve) => {
    const answered = ({ data }) => {
      if (typeof data?.key === "string") finish();
    };
    const finish = () => {
      tabs.removeEventListener("message", answered);
      clearTimeout(timer);
      resolve(hasApiKey());
    };
    // Registered after the listener above, so the key is stored before this resolves.
    tabs.addEventListener("message", answered);
    const timer = setTimeout(finish, waitMs);
    tabs.postMessage("ask");
  });
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(`/api${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    sessionStorage.removeItem(KEY); // a wrong or revoked key: ask again
    throw new Unauthorized();
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail;
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(response.status, detail);
  }
  return response.status === 204 ? null : response.json();
}
