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

// The request was given up (its view was left): not a failure to show anyone.
export class Abandoned extends Error {
  constructor() {
    super("the request was given up");
  }
}

// No answer at all (the server is down, the network gone).
export class Unreachable extends Error {
  constructor(cause) {
    super(`the server did not answer (${cause?.message ?? cause})`);
    this.cause = cause;
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

// `signal` (an AbortSignal): once aborted, the request is dropped and this throws Abandoned.
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(`/api${path}`, {
      method,
      headers,
      signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw signal?.aborted ? new Abandoned() : new Unreachable(error);
  }
  if (response.status === 401) {
    sessionStorage.removeItem(KEY); // a wrong or revoked key: ask again
    throw new Unauthorized();
  }
  try {
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail;
      } catch {
        // not JSON: keep the status text
      }
      throw new ApiError(response.status, detail);
    }
    return response.status === 204 ? null : await response.json();
  } catch (error) {
    if (signal?.aborted) throw new Abandoned(); // aborted while the body was read
    throw error;
  }
}
