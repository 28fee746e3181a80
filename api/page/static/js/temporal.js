// Temporal actions in the wizard: their defaults, fields, JSON for the API and words. The
// pickers (workflow types, task queues, schedules) come from GET /api/temporal/catalog, read
// from the user's cluster once per page load; without it the fields are plain text.
import { api } from "./api.js";
import { FieldError } from "./errors.js";
import { bind, field, h, options } from "./dom.js";

export const TEMPORAL_GROUP = ["Temporal", [
  ["temporal-cancel-workflow", "Cancel a Temporal workflow"],
  ["temporal-terminate-workflow", "Terminate a Temporal workflow"],
  ["temporal-signal-workflow", "Signal a Temporal workflow"],
  ["temporal-reset-workflow", "Reset a Temporal workflow"],
  ["temporal-start-workflow", "Start a Temporal workflow"],
  ["temporal-pause-schedule", "Pause a Temporal schedule"],
  ["temporal-unpause-schedule", "Unpause a Temporal schedule"],
  ["temporal-trigger-schedule", "Trigger a Temporal schedule"],
]];

const KIND = {
  "temporal-cancel-workflow": "workflow", "temporal-terminate-workflow": "workflow",
  "temporal-signal-workflow": "workflow", "temporal-reset-workflow": "workflow",
  "temporal-pause-schedule": "schedule", "temporal-unpause-schedule": "schedule",
  "temporal-trigger-schedule": "schedule",
};

export const isTemporal = (type) => type?.startsWith("temporal-");

// ------------------------------------------------------------------ the pickers

const LISTS = { workflow_types: "temporal-workflow-types", task_queues: "temporal-task-queues", schedules: "temporal-schedules" };
let catalogLoaded = null;

function pickers() {
  for (const id of Object.values(LISTS)) {
    if (!document.getElementById(id)) document.body.append(h("datalist", { id }));
  }
  catalogLoaded ??= api("/temporal/catalog").then((catalog) => {
    const fill = (id, values) => document.getElementById(id).replaceChildren(...values.map((value) => h("option", { value })));
    fill(LISTS.workflow_types, catalog.workflow_types);
    fill(LISTS.task_queues, catalog.task_queues);
    fill(LISTS.schedules, catalog.schedules.map((s) => s.id));
  }).catch(() => null); // no cluster to read: the fields stay free text
}

// ------------------------------------------------------------------ defaults and fields

export function defaultTemporalAction(type) {
  const kind = KIND[type];
  const action = { type };
  if (kind) Object.assign(action, { source: "inferred", [`${kind}_id`]: null });
  if (type === "temporal-signal-workflow") Object.assign(action, { signal: "", args: [] });
  if (type === "temporal-reset-workflow") action.reset_to = "last-workflow-task";
  if (type === "temporal-start-workflow") {
    Object.assign(action, { workflow_type: "", task_queue: "", workflow_id: "{{ automation.id }}-{{ firing.id }}", args: [] });
  }
  return action;
}

const argsDrafts = new WeakMap();

export function temporalFields(action, at, rerender) {
  pickers();
  const text = (name, label, hint, attributes = {}) =>
    field(label, bind(h("input", { type: "text", "data-loc": at(name), value: action[name] ?? "", ...attributes }), action, name), hint);
  const fields = [];
  const kind = KIND[action.type];
  if (kind) {
    const id = `${kind}_id`;
    const source = h("select", { "data-loc": at("source") }, options([
      ["inferred", `The ${kind} of the triggering event (inferred)`],
      ["selected", `A chosen ${kind}`],
    ], action.source));
    source.addEventListener("change", () => {
      action.source = source.value;
      if (source.value === "inferred") action[id] = null;
      rerender();
    });
    fields.push(field(`Which ${kind}`, source));
    if (action.source === "selected") {
      const list = kind === "schedule" ? { list: LISTS.schedules } : {};
      fields.push(text(id, kind === "schedule" ? "Schedule ID" : "Workflow ID", null, list));
    }
  }
  if (action.type === "temporal-start-workflow") {
    fields.push(
      text("workflow_type", "Workflow type", null, { list: LISTS.workflow_types }),
      text("task_queue", "Task queue", null, { list: LISTS.task_queues }),
      text("workflow_id", "Workflow ID (template)", "Retries of one firing start it once."));
  }
  if (action.type === "temporal-signal-workflow") fields.push(text("signal", "Signal name"));
  if (action.type === "temporal-signal-workflow" || action.type === "temporal-start-workflow") {
    if (!argsDrafts.has(action)) argsDrafts.set(action, JSON.stringify(action.args ?? []));
    const args = h("textarea", { rows: 2, "data-loc": at("args"), spellcheck: "false" }, argsDrafts.get(action));
    args.addEventListener("input", () => argsDrafts.set(action, args.value));
    fields.push(field("Arguments (JSON list)", args, "String values are templates, e.g. [\"{{ event.resource['prefect.resource.name'] }}\"]."));
  }
  if (action.type === "temporal-reset-workflow") {
    const to = bind(h("select", { "data-loc": at("reset_to") }, options([
      ["last-workflow-task", "Its last workflow task"], ["first-workflow-task", "Its first workflow task"],
    ], action.reset_to)), action, "reset_to");
    fields.push(field("Reset to", to));
  }
  if (action.type === "temporal-terminate-workflow" || action.type === "temporal-reset-workflow") {
    fields.push(text("reason", "Reason (template, optional)"));
  }
  if (action.type === "temporal-pause-schedule" || action.type === "temporal-unpause-schedule") {
    fields.push(text("note", "Note (template, optional)"));
  }
  fields.push(text("namespace", "Namespace (optional)", "Default: the event's, else the configured one."));
  return fields;
}

// ------------------------------------------------------------------ to the API, in words

export function temporalForApi(out, action, loc) {
  const kind = KIND[out.type];
  if (kind) {
    const id = `${kind}_id`;
    const prefix = `temporal.${kind}.`;
    if (out.source === "inferred") out[id] = null;
    else if (out[id]?.startsWith(prefix)) out[id] = out[id].slice(prefix.length);
  }
  if (!out.namespace?.trim()) delete out.namespace;
  for (const name of ["reason", "note"]) if (!out[name]?.trim()) delete out[name];
  if (argsDrafts.has(action)) {
    try {
      out.args = JSON.parse(argsDrafts.get(action) || "[]");
      if (!Array.isArray(out.args)) throw new Error("must be a JSON list");
    } catch (error) {
      throw new FieldError(`${loc}.args`, `not a JSON list: ${error.message}`);
    }
  }
  return out;
}

export function describeTemporal(action) {
  const kind = KIND[action.type];
  const verb = { cancel: "Cancel", terminate: "Terminate", signal: "Signal", reset: "Reset", pause: "Pause", unpause: "Unpause", trigger: "Trigger" }[action.type.split("-")[1]];
  if (action.type === "temporal-start-workflow") return `Start Temporal workflow ${action.workflow_type} on ${action.task_queue}`;
  const id = action[`${kind}_id`];
  return action.source === "inferred" ? `${verb} the Temporal ${kind} of the event` : `${verb} Temporal ${kind} ${id}`;
}

// ------------------------------------------------------------------ trigger templates

const WORKFLOW = "temporal.workflow.";
const CLOSED = ["completed", "failed", "timed-out", "canceled", "terminated"];
const ID = "prefect.resource.id";

export const TEMPORAL_TEMPLATES = [
  ["temporal-workflow-closed", "Temporal workflow failed or timed out"],
  ["temporal-workflow-stuck", "Temporal workflow running too long"],
  ["temporal-task-queue", "Temporal task queue without pollers"],
  ["temporal-schedule-failing", "Temporal schedule's runs failing"],
];

export const TEMPORAL_CHOICE = {
  workflowStatus: "failed", workflowTypes: "", workflowMinutes: 30, taskQueues: "",
  schedules: "", failures: 3, failureMinutes: 10,
};

const names = (text) => String(text ?? "").split(/[\s,]+/).filter(Boolean);
const oneOrMany = (list) => (list.length === 1 ? list[0] : list);
const ofTypes = (text) => (names(text).length ? { "temporal.workflow-type": oneOrMany(names(text)) } : {});
const ids = (prefix, text) => (names(text).length ? oneOrMany(names(text).map((n) => prefix + n)) : `${prefix}*`);

export function temporalTriggerFrom(choice) {
  switch (choice.template) {
    case "temporal-workflow-closed":
      return {
        posture: "Reactive", match: { [ID]: `${WORKFLOW}*`, ...ofTypes(choice.workflowTypes) },
        expect: [WORKFLOW + choice.workflowStatus], for_each: [ID],
      };
    case "temporal-workflow-stuck":
      return {
        posture: "Proactive", match: { [ID]: `${WORKFLOW}*`, ...ofTypes(choice.workflowTypes) },
        after: [`${WORKFLOW}started`], expect: CLOSED.map((s) => WORKFLOW + s), for_each: [ID],
        within: Number(choice.workflowMinutes) * 60,
      };
    case "temporal-task-queue":
      return {
        posture: "Reactive", match: { [ID]: ids("temporal.task-queue.", choice.taskQueues) },
        expect: ["temporal.task-queue.not-ready"], for_each: [ID],
      };
    case "temporal-schedule-failing":
      return {
        posture: "Reactive", expect: [`${WORKFLOW}failed`],
        match_related: { "prefect.resource.role": "schedule", [ID]: ids("temporal.schedule.", choice.schedules) },
        for_each: ["related:schedule:prefect.resource.id"],
        threshold: Number(choice.failures), within: Number(choice.failureMinutes) * 60,
      };
    default:
      return null;
  }
}

// The Temporal choices that could have built `trigger` (the caller keeps the one that does).
export function temporalCandidates(trigger) {
  const listed = (value, prefix = "") => (Array.isArray(value) ? value : value ? [value] : [])
    .filter((v) => v !== `${prefix}*`).map((v) => v.slice(prefix.length)).join(", ");
  const types = listed(trigger.match?.["temporal.workflow-type"]);
  const related = Array.isArray(trigger.match_related) ? {} : trigger.match_related ?? {};
  const within = Number(trigger.within ?? 0);
  return [
    { template: "temporal-workflow-closed", workflowStatus: (trigger.expect?.[0] ?? "").slice(WORKFLOW.length), workflowTypes: types },
    { template: "temporal-workflow-stuck", workflowMinutes: within / 60, workflowTypes: types },
    { template: "temporal-task-queue", taskQueues: listed(trigger.match?.[ID], "temporal.task-queue.") },
    {
      template: "temporal-schedule-failing", schedules: listed(related[ID], "temporal.schedule."),
      failures: trigger.threshold ?? 1, failureMinutes: within / 60,
    },
  ];
}

export function temporalFits(choice) {
  return choice.template !== "temporal-workflow-closed" || CLOSED.includes(choice.workflowStatus);
}

export function describeTemporalTrigger(choice, trigger, duration) {
  const only = (text, what) => (names(text).length ? ` (${what} ${names(text).join(", ")})` : "");
  switch (choice.template) {
    case "temporal-workflow-closed":
      return `When a Temporal workflow is ${choice.workflowStatus}${only(choice.workflowTypes, "of type")}`;
    case "temporal-workflow-stuck":
      return `When a Temporal workflow runs longer than ${duration(trigger.within)}${only(choice.workflowTypes, "of type")}`;
    case "temporal-task-queue":
      return `When a Temporal task queue has no pollers${only(choice.taskQueues, "queue")}`;
    case "temporal-schedule-failing":
      return `When a Temporal schedule's runs fail ${choice.failures} times within ${duration(trigger.within)}${only(choice.schedules, "schedule")}`;
    default:
      return null;
  }
}

export function temporalTemplateFields(choice) {
  pickers();
  const input = (key, loc, attributes = {}) =>
    bind(h("input", { type: "text", value: choice[key], "data-loc": loc, placeholder: "any", ...attributes }), choice, key);
  const number = (key, loc) =>
    bind(h("input", { type: "number", min: "0", step: "any", value: choice[key], "data-loc": loc }), choice, key);
  const types = field("Only these workflow types (optional)", input("workflowTypes", "trigger.match", { list: LISTS.workflow_types }), "Separated by commas; empty means every workflow.");
  switch (choice.template) {
    case "temporal-workflow-closed":
      return [field("When a Temporal workflow is", bind(h("select", { "data-loc": "trigger.expect" }, options(CLOSED.map((s) => [s]), choice.workflowStatus)), choice, "workflowStatus")), types];
    case "temporal-workflow-stuck":
      return [field("Still running after (minutes)", number("workflowMinutes", "trigger.within"), "Counted from its start; fires once per workflow."), types];
    case "temporal-task-queue":
      return [field("Only these task queues (optional)", input("taskQueues", "trigger.match", { list: LISTS.task_queues }), "The bridge says not-ready after --not-ready-after without a poller.")];
    case "temporal-schedule-failing":
      return [
        field("Failed runs", number("failures", "trigger.threshold")),
        field("Within (minutes)", number("failureMinutes", "trigger.within")),
        field("Only these schedules (optional)", input("schedules", "trigger.match_related", { list: LISTS.schedules })),
      ];
    default:
      return [];
  }
}
