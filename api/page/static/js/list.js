// The list: every automation with its summary and counters, an on/paused switch, and a menu
// (Copy ID, Edit, Delete).
import { Abandoned, api } from "./api.js";
import { ago, describeActions, describeTrigger, when } from "./describe.js";
import { copyText, h, toast } from "./dom.js";
import { atMost, refreshLoop, singleFlight } from "./refresh.js";

// The counters come from POST /api/automations/statuses: one request per refresh for up to
// STATUS_BATCH automations (the API's bound), however many are listed.
const STATUS_BATCH = 500;
const REFRESH_MS = 3000;
// The first counters are awaited this long before the list shows (without them if need be).
const STATUS_PATIENCE_MS = 3000;

// id → counters (or null: unknown), for the automations listed.
async function readCounters(ids, signal) {
  const counters = new Map();
  for (let start = 0; start < ids.length; start += STATUS_BATCH) {
    const { statuses } = await api("/automations/statuses", {
      method: "POST", body: { ids: ids.slice(start, start + STATUS_BATCH) }, signal,
    });
    for (const entry of statuses) counters.set(entry.id, entry.state === "ok" ? entry : null);
  }
  return counters;
}

// /api/health, read even when it answers 503 (its body says why). Never blocks the list.
async function readHealth() {
  try {
    const response = await fetch("/api/health");
    return await response.json();
  } catch {
    return null;
  }
}

function notEvaluating(reason) {
  return h("div", { class: "banner", role: "alert" }, `This automation is not evaluating: ${reason}`);
}

export function confirmDelete(automation) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent =
    `"${automation.name}" will stop and be removed, with its workflow. This cannot be undone.`;
  return new Promise((resolve) => {
    dialog.returnValue = ""; // Escape keeps the last value: never let it be a stale "ok"
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

// A menu button with its items: arrow keys move between them, Escape or a click elsewhere closes.
function menu(automation, rerender) {
  const list = h("ul", { role: "menu", hidden: true, "aria-label": `Actions for ${automation.name}` });
  const button = h("button", {
    type: "button", class: "icon", "aria-haspopup": "menu", "aria-expanded": "false",
    "aria-label": `More actions for ${automation.name}`, title: "More actions",
  }, "⋯");
  const items = () => [...list.querySelectorAll("[role=menuitem]")];
  const outside = (event) => { if (!list.contains(event.target) && event.target !== button) close(); };
  const close = () => {
    list.hidden = true;
    button.setAttribute("aria-expanded", "false");
    document.removeEventListener("click", outside);
  };
  button.addEventListener("click", () => {
    if (!list.hidden) return close();
    list.hidden = false;
    button.setAttribute("aria-expanded", "true");
    items()[0].focus();
    setTimeout(() => document.addEventListener("click", outside));
  });
  list.addEventListener("keydown", (event) => {
    const all = items();
    const at = all.indexOf(document.activeElement);
    if (event.key === "Escape") { close(); button.focus(); }
    else if (event.key === "ArrowDown") { event.preventDefault(); all[(at + 1) % all.length].focus(); }
    else if (event.key === "ArrowUp") { event.preventDefault(); all[(at - 1 + all.length) % all.length].focus(); }
    else if (event.key === "Tab") close();
  });
  const item = (label, action) => h("li", { role: "none" },
    h("button", { type: "button", role: "menuitem", tabindex: "-1", onclick: async () => { close(); await action(); } }, label));
  list.append(
    item("Copy ID", async () => {
      try {
        await copyText(automation.id);
        toast("ID copied to the clipboard");
      } catch {
        toast(`Could not copy; the ID is ${automation.id}`);
      }
      button.focus();
    }),
    item("Edit", () => { location.hash = `#/edit/${automation.id}`; }),
    item("Delete", async () => {
      if (!(await confirmDelete(automation))) return button.focus();
      try {
        await api(`/automations/${automation.id}`, { method: "DELETE" });
        toast(`Deleted ${automation.name}`);
      } catch (error) {
        toast(`Could not delete it: ${error.message}`);
      }
      await rerender();
    }),
  );
  return h("div", { class: "menu" }, button, list);
}

// The switch says what the API confirmed, not merely what was clicked.
export function enabledSwitch(automation, onChange = () => {}) {
  const input = h("input", { type: "checkbox", role: "switch", checked: automation.enabled, "aria-label": `Enabled: ${automation.name}` });
  const state = h("span", { class: "state", "aria-hidden": "true" }, automation.enabled ? "On" : "Paused");
  input.addEventListener("change", async () => {
    input.disabled = true;
    try {
      const updated = await api(`/automations/${automation.id}`, { method: "PATCH", body: { enabled: input.checked } });
      automation.enabled = updated.enabled;
      toast(updated.enabled ? `${automation.name} is on` : `${automation.name} is paused`);
      onChange(updated);
    } catch (error) {
      toast(`Could not change it: ${error.message}`);
    } finally {
      input.checked = automation.enabled;
      state.textContent = automation.enabled ? "On" : "Paused";
      input.disabled = false;
      input.focus();
    }
  });
  return h("label", { class: "switch" }, input, state);
}

function countersText(stats) {
  if (!stats) return ["Last fired: unknown · firings unknown"];
  const { firings, last_fired: lastFired } = stats;
  return [
    "Last fired: ", lastFired ? h("time", { datetime: lastFired, title: when(lastFired) }, ago(lastFired)) : "never",
    ` · Fired ${firings} time${firings === 1 ? "" : "s"}`,
  ];
}

function row(automation, counters, problem, rerender) {
  return h("article", { class: "card automation", dataset: { id: automation.id }, "aria-label": automation.name },
    h("div", { class: "main" },
      problem ? notEvaluating(problem) : null,
      h("a", { class: "name", href: `#/a/${automation.id}` }, automation.name),
      automation.description ? h("div", { class: "meta" }, automation.description) : null,
      h("div", { class: "summary" }, h("span", { class: "trigger" }, describeTrigger(automation.trigger)), " → ", describeActions(automation)),
      counters),
    h("div", { class: "controls" }, enabledSwitch(automation), menu(automation, rerender)),
  );
}

// `nav`: this view's navigation (main.js): `show` puts the view on the page while it is the
// current one, and `signal` is aborted when the page moves on, which stops the refresh.
export async function renderList(nav) {
  let shown = new Map(); // id → the counters element of its row
  // One read of every listed automation's counters at a time (the first, the refreshes).
  const refresh = singleFlight(async () => {
    if (!shown.size) return;
    const rows = shown;
    let counters;
    try {
      counters = await readCounters([...rows.keys()], nav.signal);
    } catch (error) {
      // No answer: rows still waiting for their first counters say they are unknown.
      for (const element of rows.values()) {
        if (element.dataset.loading) element.replaceChildren(...countersText(null));
      }
      throw error;
    }
    for (const [id, element] of shown) {
      if (!counters.has(id)) continue;
      delete element.dataset.loading;
      element.replaceChildren(...countersText(counters.get(id)));
    }
  });

  // Draws the whole list (again after a deletion); the one refresh loop reads `shown`.
  const render = async () => {
    const [automations, health] = await Promise.all([
      api("/automations/filter", { method: "POST", body: { sort: "NAME_ASC" }, signal: nav.signal }),
      readHealth(),
    ]);
    shown = new Map(automations.map((a) => [a.id, h("div", { class: "meta counters", dataset: { loading: "yes" } }, "Loading counters…")]));
    await atMost(refresh(), STATUS_PATIENCE_MS);
    // Health names wedged automations (workflow tasks that keep failing); without a worker, none
    // evaluates and one banner above the list says so.
    const wedged = new Set(health?.wedged ?? []);
    const noWorker = health && !health.workers;
    const rows = automations.map((a) => row(a, shown.get(a.id),
      wedged.has(a.id) ? "its workflow task keeps failing (open it for the reason)" : null, rerender));
    nav.show(
      h("div", { class: "row spread" },
        h("h1", {}, "Automations"),
        h("div", { class: "row" },
          h("a", { class: "button add", href: "#/new", "aria-label": "Create automation", title: "Create automation" }, "+"),
          h("a", { class: "button secondary", href: "#/events", id: "nav-events" }, "Event feed"))),
      noWorker && rows.length
        ? h("div", { class: "banner", role: "alert", id: "no-worker" },
            health.temporal
              ? "No worker is running: no automation is evaluating. Start one (automations worker)."
              : "Temporal is unreachable: no automation is evaluating.")
        : null,
      rows.length
        ? h("div", { class: "list" }, rows)
        : h("div", { class: "card empty" },
            h("h2", {}, "No automations yet"),
            h("p", {}, "Create your first one with the ", h("a", { href: "#/new" }, "+ button"),
              ": pick a trigger (a flow run that fails or gets stuck, an unhealthy work queue…), the actions to run, and a name."),
            h("p", {}, "Or POST its JSON to ", h("code", {}, "/api/automations/"), " — Prefect's own clients work too.")),
    );
  };

  const rerender = () => render().catch((error) => {
    if (!(error instanceof Abandoned)) toast(`Could not read the list again: ${error.message}`);
  });
  await render();
  refreshLoop(nav.signal, refresh, REFRESH_MS);
}
