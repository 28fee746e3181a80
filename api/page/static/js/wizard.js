// The create / edit form, in three steps like Prefect's: Trigger, Actions, Details.
// API validation errors (422) are shown next to the field they name (`data-loc`).
import { ApiError, api } from "./api.js";
import { field, h } from "./dom.js";

const FLOW_RUN_STATES = ["Scheduled", "Pending", "Running", "Completed", "Failed", "Crashed", "Cancelled", "Late"];
const TERMINAL = ["Completed", "Failed", "Crashed", "Cancelled"];
const TEMPLATES = {
  "flow-run-state": "Flow run state change",
  "flow-run-stuck": "Flow run stuck in a state",
  "work-queue": "Work queue health",
  deployment: "Deployment status",
  custom: "Custom (JSON)",
};
const ACTION_TYPES = {
  "call-webhook": "Call a webhook",
  "send-notification": "Send a notification",
  "pause-automation": "Pause an automation",
  "resume-automation": "Resume an automation",
  "do-nothing": "Do nothing",
};

// ------------------------------------------------------------------ triggers

function triggerFrom(choice) {
  const id = (kind) => ({ [`prefect.resource.id`]: `prefect.${kind}.*` });
  switch (choice.template) {
    case "flow-run-state":
      return { posture: "Reactive", match: id("flow-run"), expect: choice.states.map((s) => `prefect.flow-run.${s}`) };
    case "flow-run-stuck": {
      const others = [...new Set([...TERMINAL, ...FLOW_RUN_STATES])].filter((s) => s !== choice.stuckState);
      return {
        posture: "Proactive", match: id("flow-run"), for_each: ["prefect.resource.id"],
        after: [`prefect.flow-run.${choice.stuckState}`],
        expect: others.map((s) => `prefect.flow-run.${s}`),
        within: Number(choice.minutes) * 60,
      };
    }
    case "work-queue":
      return Number(choice.minutes) > 0
        ? {
            posture: "Proactive", match: id("work-queue"), for_each: ["prefect.resource.id"],
            after: [`prefect.work-queue.${choice.queueStatus}`], expect: ["prefect.work-queue.ready"],
            within: Number(choice.minutes) * 60,
          }
        : { posture: "Reactive", match: id("work-queue"), for_each: ["prefect.resource.id"],
            expect: [`prefect.work-queue.${choice.queueStatus}`] };
    case "deployment":
      return { posture: "Reactive", match: id("deployment"), for_each: ["prefect.resource.id"],
        expect: [`prefect.deployment.${choice.deploymentStatus}`] };
    default:
      return JSON.parse(choice.json);
  }
}

function triggerStep(choice) {
  const body = h("div", {});
  const render = () => body.replaceChildren(...templateFields(choice));
  const select = h("select", { "data-loc": "trigger.template" },
    Object.entries(TEMPLATES).map(([value, label]) =>
      h("option", { value, selected: value === choice.template }, label)));
  select.addEventListener("change", () => { choice.template = select.value; render(); });
  render();
  return [field("Trigger template", select, "Start from a template, or write the trigger's JSON."), body];
}

function templateFields(choice) {
  const bind = (element, key, read = (e) => e.value) => {
    element.addEventListener("input", () => { choice[key] = read(element); });
    element.addEventListener("change", () => { choice[key] = read(element); });
    return element;
  };
  const select = (key, options, loc) => bind(h("select", { "data-loc": loc },
    options.map((o) => h("option", { value: o, selected: o === choice[key] }, o))), key);
  const minutes = (loc) => bind(h("input", { type: "number", min: "0", value: choice.minutes, "data-loc": loc }), "minutes");
  switch (choice.template) {
    case "flow-run-state": {
      const group = h("fieldset", { "data-loc": "trigger.expect" }, h("legend", {}, "When a flow run enters"),
        h("div", { class: "checks" }, FLOW_RUN_STATES.map((state) => {
          const box = h("input", { type: "checkbox", value: state, checked: choice.states.includes(state) });
          box.addEventListener("change", () => {
            choice.states = FLOW_RUN_STATES.filter((s) => group.querySelector(`input[value="${s}"]`).checked);
          });
          return h("label", {}, box, state);
        })),
        h("p", { class: "error", hidden: true }));
      return [group];
    }
    case "flow-run-stuck":
      return [
        field("When a flow run stays in", select("stuckState", ["Running", "Pending", "Scheduled", "Late", "Cancelling"], "trigger.after")),
        field("For (minutes)", minutes("trigger.within"), "Proactive: fires at the deadline if the run has not moved on."),
      ];
    case "work-queue":
      return [
        field("When a work queue becomes", select("queueStatus", ["not-ready", "paused"], "trigger.after")),
        field("And stays so for (minutes)", minutes("trigger.within"), "0 fires at once."),
      ];
    case "deployment":
      return [field("When a deployment becomes", select("deploymentStatus", ["not-ready", "ready"], "trigger.expect"))];
    default:
      return [field("Trigger (JSON)", bind(h("textarea", { rows: 10, "data-loc": "trigger" }, choice.json), "json"),
        "Prefect's event trigger: posture, expect, after, match, match_related, for_each, threshold, within.")];
  }
}

// ------------------------------------------------------------------ actions

function actionBox(action, index, automations, onRemove, rerender) {
  const loc = (name) => `actions.${index}.${name}`;
  const text = (name, label, attributes = {}, hint) => {
    const input = h(attributes.rows ? "textarea" : "input",
      { type: "text", "data-loc": loc(name), ...attributes }, attributes.rows ? action[name] ?? "" : null);
    if (!attributes.rows) input.value = action[name] ?? "";
    input.addEventListener("input", () => { action[name] = input.value; });
    return field(label, input, hint);
  };
  const type = h("select", { "data-loc": loc("type") },
    Object.entries(ACTION_TYPES).map(([value, label]) => h("option", { value, selected: value === action.type }, label)));
  type.addEventListener("change", () => {
    for (const key of Object.keys(action)) delete action[key];
    Object.assign(action, defaultAction(type.value));
    rerender();
  });
  const fields = [];
  if (action.type === "call-webhook") {
    const method = h("select", { "data-loc": loc("method") },
      ["POST", "PUT", "PATCH", "GET", "DELETE"].map((m) => h("option", { selected: m === action.method }, m)));
    method.addEventListener("change", () => { action.method = method.value; });
    const headers = h("textarea", { rows: 2, "data-loc": loc("headers") }, JSON.stringify(action.headers || {}));
    headers.addEventListener("input", () => { action._headersText = headers.value; });
    fields.push(text("url", "URL", { type: "url" }), field("Method", method),
      field("Headers (JSON)", headers),
      text("payload", "Payload (template)", { rows: 3 }, "Jinja: {{ event.resource.id }}, {{ automation.name }}, {{ labels }}, {{ firing.state }}"));
  } else if (action.type === "send-notification") {
    fields.push(text("url", "Notification URL(s)", {}, "Apprise URLs, one per line (e.g. json://host/path, mailto://…)"),
      text("subject", "Subject (template)"), text("body", "Body (template)", { rows: 3 }));
  } else if (action.type.endsWith("-automation")) {
    const source = h("select", { "data-loc": loc("source") },
      [["selected", "A selected automation"], ["inferred", "The automation in the triggering event"]]
        .map(([value, label]) => h("option", { value, selected: value === action.source }, label)));
    source.addEventListener("change", () => { action.source = source.value; rerender(); });
    fields.push(field("Target", source));
    if (action.source === "selected") {
      const target = h("select", { "data-loc": loc("automation_id") },
        h("option", { value: "" }, "Choose…"),
        automations.map((a) => h("option", { value: a.id, selected: a.id === action.automation_id }, a.name)));
      target.addEventListener("change", () => { action.automation_id = target.value || null; });
      fields.push(field("Automation", target));
    }
  }
  return h("fieldset", { class: "actionbox", "data-loc": `actions.${index}` },
    h("legend", {}, `Action ${index + 1}`),
    field("Type", type), ...fields,
    h("p", { class: "error", hidden: true }),
    h("button", { type: "button", class: "secondary", onclick: onRemove }, "Remove this action"));
}

function defaultAction(type) {
  switch (type) {
    case "call-webhook": return { type, url: "", method: "POST", headers: {}, payload: "" };
    case "send-notification": return { type, url: "", subject: "Automation {{ automation.name }} was {{ firing.state }}", body: "" };
    case "pause-automation":
    case "resume-automation": return { type, source: "selected", automation_id: null };
    default: return { type };
  }
}

function actionForApi(action) {
  const { _headersText, ...rest } = action;
  if (rest.type === "call-webhook") rest.headers = _headersText === undefined ? rest.headers : JSON.parse(_headersText || "{}");
  if (rest.type === "send-notification") {
    const urls = String(rest.url).split(/[\n,]/).map((u) => u.trim()).filter(Boolean);
    rest.url = urls.length === 1 ? urls[0] : urls;
  }
  if (rest.type.endsWith("-automation") && rest.source === "inferred") delete rest.automation_id;
  return rest;
}

// ------------------------------------------------------------------ errors

function clearErrors(form) {
  for (const box of form.querySelectorAll(".error")) { box.hidden = true; box.textContent = ""; }
  for (const bad of form.querySelectorAll("[aria-invalid]")) bad.removeAttribute("aria-invalid");
  form.querySelector("#form-error").hidden = true;
}

// Show one error next to the field whose `data-loc` is the longest prefix of its location.
function showError(form, loc, message) {
  const parts = loc.filter((p) => p !== "body").map(String);
  for (let n = parts.length; n > 0; n--) {
    const target = form.querySelector(`[data-loc="${parts.slice(0, n).join(".")}"]`);
    if (!target) continue;
    const box = target.id ? form.querySelector(`#${target.id}-error`) : target.querySelector(":scope > .error");
    const shown = box || form.querySelector("#form-error");
    shown.textContent = n < parts.length ? `${parts.slice(n).join(".")}: ${message}` : message;
    shown.hidden = false;
    target.setAttribute("aria-invalid", "true");
    return target;
  }
  const general = form.querySelector("#form-error");
  general.textContent = `${parts.join(".")}: ${message}`;
  general.hidden = false;
  return general;
}

// ------------------------------------------------------------------ the form

export async function renderWizard(view, automationId) {
  const automations = await api("/automations/filter", { method: "POST", body: { sort: "NAME_ASC" } });
  const existing = automationId ? await api(`/automations/${automationId}`) : null;
  const choice = {
    template: existing ? "custom" : "flow-run-state",
    states: ["Failed", "Crashed"], stuckState: "Running", minutes: 30,
    queueStatus: "not-ready", deploymentStatus: "not-ready",
    json: JSON.stringify(existing ? cleanTrigger(existing.trigger) : { posture: "Reactive", expect: ["my.event"] }, null, 2),
  };
  const actions = existing ? structuredClone(existing.actions) : [defaultAction("call-webhook")];
  const details = { name: existing?.name ?? "", description: existing?.description ?? "", enabled: existing?.enabled ?? true };

  const stepNames = ["Trigger", "Actions", "Details"];
  let step = 0;
  const indicator = h("ol", { class: "steps", "aria-label": "Steps" },
    stepNames.map((name, i) => h("li", { "aria-current": i === 0 ? "step" : false }, `${i + 1}. ${name}`)));

  const actionsList = h("div", {});
  const renderActions = () => actionsList.replaceChildren(...actions.map((action, index) =>
    actionBox(action, index, automations.filter((a) => a.id !== automationId),
      () => { actions.splice(index, 1); renderActions(); }, renderActions)));
  renderActions();

  const nameInput = h("input", { type: "text", "data-loc": "name", value: details.name, required: true });
  nameInput.addEventListener("input", () => { details.name = nameInput.value; });
  const descriptionInput = h("textarea", { rows: 2, "data-loc": "description" }, details.description);
  descriptionInput.addEventListener("input", () => { details.description = descriptionInput.value; });
  const enabledInput = h("input", { type: "checkbox", checked: details.enabled });
  enabledInput.addEventListener("change", () => { details.enabled = enabledInput.checked; });

  const sections = [
    h("section", { "data-step": 0, "aria-label": "Trigger" }, h("h2", {}, "Trigger"), ...triggerStep(choice)),
    h("section", { "data-step": 1, "aria-label": "Actions", hidden: true }, h("h2", {}, "Actions"), actionsList,
      h("button", { type: "button", class: "secondary", onclick: () => { actions.push(defaultAction("call-webhook")); renderActions(); } }, "Add action")),
    h("section", { "data-step": 2, "aria-label": "Details", hidden: true }, h("h2", {}, "Details"),
      field("Name", nameInput), field("Description", descriptionInput),
      h("label", { class: "switch" }, enabledInput, "Enabled")),
  ];
  const back = h("button", { type: "button", class: "secondary" }, "Back");
  const next = h("button", { type: "button" }, "Next");
  const save = h("button", { type: "submit" }, existing ? "Save changes" : "Create automation");
  const form = h("form", { class: "card", novalidate: true },
    ...sections, h("p", { class: "error", id: "form-error", role: "alert", hidden: true }),
    h("div", { class: "row end" }, h("a", { href: existing ? `#/a/${existing.id}` : "#/", class: "button secondary" }, "Cancel"), back, next, save));

  const goTo = (target) => {
    step = target;
    sections.forEach((section, i) => { section.hidden = i !== step; });
    indicator.querySelectorAll("li").forEach((li, i) => li.setAttribute("aria-current", i === step ? "step" : "false"));
    back.hidden = step === 0;
    next.hidden = step === 2;
    save.hidden = step !== 2;
    sections[step].querySelector("input, select, textarea, button")?.focus();
  };
  back.addEventListener("click", () => goTo(step - 1));
  next.addEventListener("click", () => goTo(step + 1));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    let body;
    try {
      body = {
        ...details,
        tags: existing?.tags ?? [],
        trigger: triggerFrom(choice),
        actions: actions.map(actionForApi),
        actions_on_trigger: existing?.actions_on_trigger ?? [],
        actions_on_resolve: existing?.actions_on_resolve ?? [],
      };
    } catch (error) {
      const where = choice.template === "custom" ? ["trigger"] : ["actions"];
      const target = showError(form, where, `not valid JSON: ${error.message}`);
      goTo(Number(target.closest("section")?.dataset.step ?? 0));
      return;
    }
    try {
      const saved = existing
        ? await api(`/automations/${existing.id}`, { method: "PUT", body })
        : await api("/automations/", { method: "POST", body });
      location.hash = `#/a/${saved.id}`;
    } catch (error) {
      if (!(error instanceof ApiError) || !Array.isArray(error.detail)) throw error;
      const targets = error.detail.map((d) => showError(form, d.loc, d.msg));
      const first = targets[0];
      goTo(Number(first.closest("section")?.dataset.step ?? step));
      first.focus?.();
    }
  });

  view.replaceChildren(h("h1", {}, existing ? `Edit ${existing.name}` : "New automation"), indicator, form);
  goTo(0);
}

function cleanTrigger(trigger) {
  const { id, type, ...rest } = trigger;
  return rest;
}
