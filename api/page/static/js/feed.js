// The event feed (#/events): the stored events, filtered by name, resource and time, with new
// ones arriving live over the /api/events/out websocket; each opens as JSON, and any can seed a
// new automation (the wizard's expect and match pre-filled).
import { api, apiKey } from "./api.js";
import { field, h, options } from "./dom.js";
import { when } from "./describe.js";

const SEED = "automations.fromEvent";
const MAX_ROWS = 500;
const RANGES = [["1", "Last hour"], ["24", "Last 24 hours"], ["168", "Last 7 days"]];

// The trigger a new automation starts from: this event's name, on this event's resource.
export function takeSeedTrigger() {
  const raw = sessionStorage.getItem(SEED);
  sessionStorage.removeItem(SEED);
  if (!raw) return null;
  const event = JSON.parse(raw);
  return {
    posture: "Reactive",
    expect: [event.event],
    match: { "prefect.resource.id": event.resource["prefect.resource.id"] },
    threshold: 1,
    within: 0,
  };
}

function eventFilter(form) {
  const since = new Date(Date.now() - Number(form.hours) * 3600 * 1000).toISOString();
  const filter = { occurred: { since, until: new Date(Date.now() + 60_000).toISOString() } };
  if (form.name.trim()) filter.event = { prefix: [form.name.trim()] };
  if (form.resource.trim()) filter.resource = { id_prefix: [form.resource.trim()] };
  if (form.id) filter.id = { id: [form.id] };
  if (form.text) filter.text = { query: form.text };
  return filter;
}

function eventRow(event) {
  const json = h("pre", { class: "event-json" }, JSON.stringify(event, null, 2));
  const create = h("button", {
    type: "button", class: "secondary",
    onclick: () => {
      sessionStorage.setItem(SEED, JSON.stringify(event));
      location.hash = "#/new";
    },
  }, "Create automation from this event");
  return h("tr", { dataset: { event: event.id } },
    h("td", {}, h("time", { datetime: event.occurred, title: event.occurred }, when(event.occurred))),
    h("td", { class: "event-name" }, event.event),
    h("td", { class: "key" }, event.resource["prefect.resource.id"] ?? ""),
    h("td", {}, h("details", {}, h("summary", {}, "Open as JSON"), json, create)));
}

// `query`: "?resource=<id prefix>", "?event=<event id>", "&text=<words>" (links from an
// automation's view: its lifecycle events, a firing's triggering event, a firing's own events).
// `nav`: this view's navigation (main.js); leaving the view closes the live socket.
export async function renderFeed(nav, query = "") {
  const { signal } = nav;
  const params = new URLSearchParams(query.replace(/^\?/, ""));
  const form = { name: "", resource: params.get("resource") ?? "", hours: params.get("event") || params.get("text") ? "168" : "24", id: params.get("event"), text: params.get("text") };
  const name = h("input", { type: "text", id: "feed-name", placeholder: "prefect.flow-run.", autocomplete: "off" });
  const resource = h("input", { type: "text", id: "feed-resource", placeholder: "prefect.flow-run.…", autocomplete: "off", value: form.resource });
  const hours = h("select", { id: "feed-range" }, options(RANGES, form.hours));
  const status = h("p", { class: "meta", id: "feed-status", role: "status" }, "Loading…");
  const gaps = h("div", { id: "feed-gaps" });
  const rows = h("tbody", {});
  const table = h("div", { class: "card scroll" }, h("table", { id: "events" },
    h("caption", { class: "visually-hidden" }, "Events, newest first"),
    h("thead", {}, h("tr", {}, ["When", "Event", "Resource", ""].map((t) => h("th", { scope: "col" }, t)))),
    rows));
  const controls = h("form", { class: "card row filters", role: "search" },
    field("Event name starts with", name), field("Resource id starts with", resource), field("Time", hours),
    h("button", { type: "submit" }, "Filter"));

  let socket = null;
  let first = true;
  signal.addEventListener("abort", () => socket?.close(), { once: true });
  const shownIds = new Set();

  const prepend = (event) => {
    if (shownIds.has(event.id)) return;
    shownIds.add(event.id);
    rows.prepend(eventRow(event));
    while (rows.children.length > MAX_ROWS) rows.lastElementChild.remove();
  };

  const listen = (filter) => {
    socket?.close();
    if (signal.aborted) return;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/events/out`;
    socket = new WebSocket(url, ["prefect"]);
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "auth", token: apiKey() }));
      socket.send(JSON.stringify({ type: "filter", filter, backfill: false }));
    });
    socket.addEventListener("message", (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "event") {
        prepend(data.event);
        status.textContent = `${shownIds.size} events shown · live`;
      }
    });
    socket.addEventListener("close", () => {
      if (!signal.aborted) status.textContent = `${shownIds.size} events shown · live updates stopped (reload to resume)`;
    });
  };

  const load = async () => {
    form.name = name.value;
    form.resource = resource.value;
    form.hours = hours.value;
    if (!first) form.id = form.text = null; // a link's filter applies to the first load only
    first = false;
    const filter = eventFilter(form);
    listen(filter); // first, so nothing posted meanwhile is missed (duplicates are skipped)
    const page = await api("/events/filter", { method: "POST", body: { filter, limit: 200 }, signal });
    rows.replaceChildren();
    shownIds.clear();
    [...page.events].reverse().forEach(prepend);
    status.textContent = `${page.total} events match${page.total > page.events.length ? ` (newest ${page.events.length} shown)` : ""} · live`;
    gaps.replaceChildren(...page.gaps.map((gap) => h("p", { class: "card error", role: "alert" },
      `The feed has a gap: ${gap.events} events from ${gap.start} to ${gap.end} were accepted but not stored (${gap.reason}).`)));
  };
  controls.addEventListener("submit", (event) => {
    event.preventDefault();
    load().catch((error) => {
      if (!signal.aborted) status.textContent = `Could not read the events: ${error.message}`;
    });
  });

  nav.show(
    h("p", {}, h("a", { href: "#/" }, "← All automations")),
    h("h1", {}, "Events"),
    h("p", { class: "hint" }, "Every event the API accepted, the automations' own included. New ones appear as they arrive."),
    controls, status, gaps, table);
  await load();
}
