// One automation: its definition, counters, recent firings (refreshed while shown), and a link
// to its workflow in the Temporal Web UI.
import { api } from "./api.js";
import { describeAction, describeActions, describeTrigger, when } from "./describe.js";
import { h } from "./dom.js";
import { enabledSwitch } from "./list.js";
import { atMost, refreshLoop, singleFlight } from "./refresh.js";
import { testPanel } from "./testrun.js";

const REFRESH_MS = 2000;

function firingRow(firing) {
  // The for_each key: its values (the labels' names are in the tooltip).
  const labels = Object.entries(firing.labels);
  const key = labels.map(([, v]) => v || "\"\"").join(", ") || "—";
  const keyTitle = labels.map(([k, v]) => `${k}=${v}`).join(", ") || "no for_each: one key";
  return h("tr", { dataset: { firing: firing.id } },
    h("td", {}, h("time", { datetime: firing.occurred }, when(firing.occurred))),
    h("td", {}, h("span", { class: `pill ${firing.state}` }, firing.state)),
    h("td", { class: "key", title: keyTitle }, key),
    h("td", {}, firing.event_name
      ? [firing.event_name, h("div", { class: "hint" }, `${firing.event_resource_id ?? ""} · `,
          h("a", { href: `#/events/?event=${firing.event_id}`, class: "event-link" }, `event ${firing.event_id.slice(0, 8)}`))]
      : "— (a deadline passed)"),
    h("td", {}, h("a", { href: `#/events/?text=${firing.id}`, class: "firing-events" }, "its events"), firing.actions.length
      ? h("ol", { class: "results" }, firing.actions.map((a) =>
          h("li", {}, `${a.type} `, h("span", { class: `pill ${a.status}` }, a.status),
            a.detail ? h("div", { class: "hint" }, a.detail) : null)))
      : "no actions"),
  );
}

function firingsSection(stats) {
  return stats.recent.length
    ? h("div", { class: "card scroll" }, h("table", { id: "firings" },
        h("caption", { class: "visually-hidden" }, "Recent firings, newest first"),
        h("thead", {}, h("tr", {}, ["When", "State", "Key", "Event", "Action results"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, [...stats.recent].reverse().map(firingRow))))
    : h("p", { class: "card empty", id: "no-firings" }, "It has not fired yet. Firings show up here as they happen.");
}

function countersText(automation, status) {
  const { stats } = status;
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return [
    `Fired ${plural(stats.firings, "time")}`,
    `last fired ${when(stats.last_fired)}`,
    `${plural(stats.events_received, "event")} received`,
    `next deadline ${status.next_deadline ? when(status.next_deadline) : "none"}`,
  ].join(" · ");
}

function actionGroups(automation) {
  const group = (title, actions) => actions.length
    ? [h("dt", {}, title), h("dd", {}, h("ol", {}, actions.map((a) => h("li", {}, describeAction(a)))))]
    : [];
  return h("dl", { class: "definition" },
    h("dt", {}, "Trigger"), h("dd", {}, describeTrigger(automation.trigger)),
    group("Actions", [...automation.actions, ...automation.actions_on_trigger]),
    group("When it resolves", automation.actions_on_resolve));
}

// The banner of an automation that is not evaluating (no worker, a workflow task that keeps
// failing); hidden while it evaluates. role=alert: screen readers announce it when it appears.
function notEvaluatingBanner() {
  return h("div", { class: "banner", id: "not-evaluating", role: "alert", hidden: true });
}

function showEvaluating(banner, state) {
  banner.hidden = state.evaluating;
  banner.textContent = state.evaluating ? "" : `This automation is not evaluating: ${state.problem}`;
}

// `nav`: this view's navigation (main.js); its signal stops the refreshes.
export async function renderDetail(nav, automationId, config) {
  // Only the definition is needed to show the page: the counters come from the workflow itself,
  // which cannot answer while no worker runs or while its workflow task keeps failing, and the
  // banner then says why.
  const { signal } = nav;
  const automation = await api(`/automations/${automationId}`, { signal });
  const workflowId = `automation-${automation.id}`;
  const workflowUrl = config.temporal_ui_url
    ? `${config.temporal_ui_url}/namespaces/${encodeURIComponent(config.namespace)}/workflows/${workflowId}`
    : null;
  const banner = notEvaluatingBanner();
  const counters = h("p", { class: "meta", id: "counters" }, "Loading counters…");
  let firings = h("p", { class: "card empty", id: "firings-loading" }, "Loading recent firings…");
  const definition = h("pre", { id: "definition" }, "Shown once the automation answers.");
  let shown = null;

  nav.show(
    h("p", {}, h("a", { href: "#/" }, "← All automations")),
    h("div", { class: "row spread" },
      h("h1", {}, automation.name),
      h("div", { class: "row" },
        enabledSwitch(automation),
        workflowUrl
          ? h("a", { class: "button secondary", href: workflowUrl, target: "_blank", rel: "noopener", id: "workflow-link" }, "Open in Temporal Web UI")
          : null,
        h("a", { class: "button", href: `#/edit/${automation.id}` }, "Edit"))),
    banner,
    automation.description ? h("p", {}, automation.description) : null,
    h("div", { class: "card" },
      h("p", { class: "sentence" }, h("strong", {}, describeTrigger(automation.trigger)), " → ", describeActions(automation)),
      counters,
      h("p", { class: "meta" }, "Workflow ", h("code", {}, workflowId), ` in namespace ${config.namespace}`,
        workflowUrl ? null : " (set TEMPORAL_UI_URL to link to the Temporal Web UI)")),
    h("h2", {}, "Recent firings"),
    firings,
    h("h2", {}, "Backtest"),
    h("p", { class: "hint" }, "When it would have fired on the stored events, and what it would have sent (nothing is sent)."),
    testPanel({ id: "backtest", label: "Backtest", target: () => ({ automation_id: automation.id }) }),
    h("p", {}, h("a", { href: `#/events/?resource=prefect.automation.${automation.id}`, id: "automation-events" }, "Events of this automation in the feed"),
      " (its lifecycle events: ", h("code", {}, automation.resource_id ?? `prefect.automation.${automation.id}`), ")"),
    h("h2", {}, "Definition"),
    actionGroups(automation),
    h("details", {}, h("summary", {}, "JSON"), definition),
  );

  const showStatus = (status) => {
    counters.textContent = countersText(automation, status);
    // The status carries the definition with secrets masked; the page shows that one.
    definition.textContent = JSON.stringify(status.automation, null, 2);
    // Too busy to answer live (a burst of actions): counters from its last workflow task, and
    // the firings shown so far stay until a live answer comes.
    if (status.live === false) {
      counters.textContent += " (busy: counters as of its last step)";
      if (shown !== null) return;
    }
    const now = JSON.stringify(status.stats.recent);
    if (now !== shown) {
      shown = now;
      const fresh = firingsSection(status.stats);
      firings.replaceWith(fresh);
      firings = fresh;
    }
  };

  // Two refreshes, each never overlapping itself: the status (a query the workflow answers,
  // which may take seconds when it is busy or has no worker) and the health banner, which
  // must not wait for the status.
  const status = singleFlight(async () => {
    try {
      showStatus(await api(`/automations/${automationId}/status`, { signal }));
    } catch (error) {
      // A missed status is asked again at the next refresh; until one arrives, say so.
      if (!signal.aborted && shown === null) {
        counters.textContent = "Counters unavailable: the automation does not answer.";
      }
      throw error;
    }
  });
  const health = singleFlight(async () => showEvaluating(banner, await api(`/automations/${automationId}/health`, { signal })));
  // Show the counters before returning when they come quickly, without waiting long for them.
  await atMost(Promise.all([status(), health()]), 1500);
  refreshLoop(signal, status, REFRESH_MS);
  refreshLoop(signal, health, REFRESH_MS);
}
