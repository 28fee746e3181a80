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
