// Test before you trust: run an automation over the stored events of a time range (the wizard's
// Test, and the detail view's Backtest) and show when it would have fired and what it would have
// sent. POST /api/automations/test has no side effect.
import { api } from "./api.js";
import { field, h, options } from "./dom.js";
import { when } from "./describe.js";

const RANGES = [["1", "Last hour"], ["24", "Last 24 hours"], ["168", "Last 7 days"]];

function actionText(action) {
  const request = action.request ?? {};
  const parts = [h("strong", {}, action.type), " ", h("span", { class: "pill" }, action.status)];
  const where = action.target ?? request.url ?? (request.to ?? []).join(", ");
  if (where) parts.push(` → ${where}`);
  if (request.body) parts.push(h("pre", { class: "rendered" }, request.body));
  if (action.would_fail) parts.push(h("div", { class: "error" }, `Would fail: ${action.would_fail}`));
  return h("li", {}, parts);
}

function firingRow(firing) {
  const key = Object.values(firing.labels).join(", ") || "—";
  return h("tr", {},
    h("td", {}, h("time", { datetime: firing.occurred, title: firing.occurred }, when(firing.occurred))),
    h("td", {}, h("span", { class: `pill ${firing.state}` }, firing.state)),
    h("td", { class: "key" }, key),
    h("td", {}, firing.event ? [firing.event.event, h("div", { class: "hint" }, firing.event.resource_id)] : "— (a deadline passed)"),
    h("td", {}, firing.actions.length
      ? h("ol", { class: "results" }, firing.actions.map(actionText))
      : firing.not_acted_on_because ?? "no actions"));
}

export function resultView(result) {
  const summary = `${result.firings.length === 0 ? "It would not have fired" : `It would have fired ${result.firings.length} time${result.firings.length === 1 ? "" : "s"}`}: `
    + `${result.events_scanned} events scanned, ${result.events_evaluated} evaluated. Nothing was sent.`;
  return h("div", { class: "test-result" },
    h("p", { class: "meta", role: "status" }, summary),
    result.capped ? h("p", { class: "error" }, `Only the first ${result.max_events} events were evaluated: narrow the range.`) : null,
    ...(result.gaps ?? []).map((gap) => h("p", { class: "error" }, `The stored events have a gap: ${gap.events} events from ${gap.start} to ${gap.end} (${gap.reason}).`)),
    result.firings.length
      ? h("div", { class: "card scroll" }, h("table", { class: "test-firings" },
          h("thead", {}, h("tr", {}, ["When", "State", "Key", "Event", "Actions (not sent)"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, result.firings.map(firingRow))))
      : null);
}

// `target(body)`: what to test, `{automation}` or `{automation_id}`; may throw to stop.
export function testPanel({ id, label, target }) {
  const range = h("select", { id: `${id}-range` }, options(RANGES, "24"));
  const output = h("div", { id: `${id}-output`, "aria-live": "polite" });
  const run = h("button", { type: "button", class: "secondary", id: `${id}-run` }, label);
  run.addEventListener("click", async () => {
    let what;
    try {
      what = target();
    } catch (error) {
      output.replaceChildren(h("p", { class: "error", role: "alert" }, error.message));
      return;
    }
    if (!what) return;
    run.disabled = true;
    output.replaceChildren(h("p", { class: "meta" }, "Evaluating the stored events…"));
    try {
      const since = new Date(Date.now() - Number(range.value) * 3600 * 1000).toISOString();
      const result = await api("/automations/test", { method: "POST", body: { ...what, events: { from: since } } });
      output.replaceChildren(resultView(result));
    } catch (error) {
      output.replaceChildren(h("p", { class: "error", role: "alert" }, error.message));
    } finally {
      run.disabled = false;
    }
  });
  return h("div", { class: "test-panel", id },
    h("div", { class: "row" }, field("Events of", range), run), output);
}
