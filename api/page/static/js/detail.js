// One automation: its definition, counters, recent firings, and a link to its workflow.
import { api } from "./api.js";
import { describeActions, describeTrigger, when } from "./describe.js";
import { h } from "./dom.js";

function firingRow(firing) {
  const key = Object.entries(firing.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "—";
  return h("tr", {},
    h("td", {}, when(firing.occurred)),
    h("td", {}, h("span", { class: `pill ${firing.state}` }, firing.state)),
    h("td", {}, key),
    h("td", {}, firing.event_name
      ? [firing.event_name, h("div", { class: "hint" }, `${firing.event_resource_id ?? ""} · event ${firing.event_id.slice(0, 8)}`)]
      : "— (deadline)"),
    h("td", {}, firing.actions.length
      ? h("ul", {}, firing.actions.map((a) =>
          h("li", {}, `${a.index + 1}. ${a.type} `, h("span", { class: `pill ${a.status}` }, a.status),
            a.detail ? h("div", { class: "hint" }, a.detail) : null)))
      : "no actions"),
  );
}

export async function renderDetail(view, automationId, config) {
  const [automation, status] = await Promise.all([
    api(`/automations/${automationId}`),
    api(`/automations/${automationId}/status`),
  ]);
  const workflowUrl = config.temporal_ui_url
    ? `${config.temporal_ui_url}/namespaces/${config.namespace}/workflows/automation-${automation.id}`
    : null;
  const stats = status.stats;
  view.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← All automations")),
    h("div", { class: "row spread" },
      h("h1", {}, automation.name),
      h("div", { class: "row" },
        workflowUrl ? h("a", { class: "button secondary", href: workflowUrl, target: "_blank", rel: "noopener", id: "workflow-link" },
          "Open in Temporal Web UI") : null,
        h("a", { class: "button", href: `#/edit/${automation.id}` }, "Edit"))),
    automation.description ? h("p", {}, automation.description) : null,
    h("div", { class: "card" },
      h("p", {}, h("strong", {}, describeTrigger(automation.trigger)), " → ", describeActions(automation)),
      h("p", { class: "meta" },
        `${automation.enabled ? "On" : "Paused"} · fired ${stats.firings} time${stats.firings === 1 ? "" : "s"} · `,
        `last fired ${when(stats.last_fired)} · ${stats.events_received} event${stats.events_received === 1 ? "" : "s"} received · `,
        `next deadline ${status.next_deadline ? when(status.next_deadline) : "none"}`),
      h("p", { class: "meta" }, `Workflow: automation-${automation.id}`)),
    h("h2", {}, "Recent firings"),
    stats.recent.length
      ? h("div", { class: "card" }, h("table", { id: "firings" },
          h("thead", {}, h("tr", {}, ["When", "State", "Key", "Event", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, [...stats.recent].reverse().map(firingRow))))
      : h("p", { class: "card empty" }, "It has not fired yet."),
    h("h2", {}, "Definition"),
    h("pre", { id: "definition" }, JSON.stringify(status.automation, null, 2)),
  );
}
