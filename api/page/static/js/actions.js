// Actions: the catalogue, each kind's fields, and the JSON the API takes. An action that acts
// on a resource has a target that is either selected (its ID) or inferred (from the event).
import { FieldError } from "./errors.js";
import { bind, field, h, options } from "./dom.js";
import { TEMPORAL_GROUP, defaultTemporalAction, isTemporal, temporalFields, temporalForApi } from "./temporal.js";

const GROUPS = [
  ["Notify", [
    ["call-webhook", "Call a webhook"],
    ["send-notification", "Send a notification"],
  ]],
  ["Prefect", [
    ["run-deployment", "Run a deployment"],
    ["pause-deployment", "Pause a deployment's schedule"],
    ["resume-deployment", "Resume a deployment's schedule"],
    ["pause-work-queue", "Pause a work queue"],
    ["resume-work-queue", "Resume a work queue"],
    ["pause-work-pool", "Pause a work pool"],
    ["resume-work-pool", "Resume a work pool"],
    ["cancel-flow-run", "Cancel the flow run"],
    ["suspend-flow-run", "Suspend the flow run"],
    ["resume-flow-run", "Resume the flow run"],
    ["change-flow-run-state", "Change the flow run's state"],
  ]],
  TEMPORAL_GROUP,
  ["Automations", [
    ["pause-automation", "Pause an automation"],
    ["resume-automation", "Resume an automation"],
  ]],
  ["Other", [["do-nothing", "Do nothing"]]],
];

// The resource each targeted action acts on; its ID field is `<kind>_id` (dashes as _).
const TARGET = {
  "run-deployment": "deployment", "pause-deployment": "deployment", "resume-deployment": "deployment",
  "pause-work-queue": "work-queue", "resume-work-queue": "work-queue",
  "pause-work-pool": "work-pool", "resume-work-pool": "work-pool",
  "pause-automation": "automation", "resume-automation": "automation",
};
const FLOW_RUN_ACTIONS = ["cancel-flow-run", "suspend-flow-run", "resume-flow-run", "change-flow-run-state"];
const STATE_TYPES = ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"];
const METHODS = ["POST", "PUT", "PATCH", "GET", "DELETE"];
const DEFAULT_SUBJECT = "Automation {{ automation.name }} was {{ firing.state }}";

const idField = (kind) => `${kind.replaceAll("-", "_")}_id`;
const words = (kind) => kind.replace("-", " ");

// Text the user is still editing (JSON objects, the URL-or-block choice), kept beside each
// action rather than in it, so the action itself stays the API's JSON.
const drafts = new WeakMap();
function draftOf(action) {
  if (!drafts.has(action)) {
    drafts.set(action, {
      send: action.block_document_id ? "block" : "url",
      headers: JSON.stringify(action.headers ?? {}, null, 1),
      parameters: action.parameters ? JSON.stringify(action.parameters, null, 2) : "",
      job_variables: action.job_variables ? JSON.stringify(action.job_variables, null, 2) : "",
    });
  }
  return drafts.get(action);
}

// A new action of this type; targets are inferred when the trigger's events carry them.
export function defaultAction(type, inferable = []) {
  if (isTemporal(type)) return defaultTemporalAction(type);
  const kind = TARGET[type];
  if (kind) {
    const inferred = kind !== "automation" && inferable.includes(kind);
    return { type, source: inferred ? "inferred" : "selected", [idField(kind)]: null };
  }
  switch (type) {
    case "call-webhook": return { type, url: "", method: "POST", headers: {}, payload: "" };
    case "send-notification": return { type, url: "", subject: DEFAULT_SUBJECT, body: "" };
    case "change-flow-run-state": return { type, state: "FAILED", name: null, message: null, force: false };
    default: return { type };
  }
}

// ------------------------------------------------------------------ the form

// One action's fieldset. `loc` is its place in the automation ("actions.0"); `context` has
// the other automations (for pause/resume-automation) and `rerender` for changes of shape.
export function actionEditor(action, loc, title, context, onRemove) {
  const at = (name) => `${loc}.${name}`;
  const draft = draftOf(action);
  const text = (name, label, hint, attributes = {}) => {
    const control = attributes.rows
      ? h("textarea", { "data-loc": at(name), spellcheck: "false", ...attributes }, action[name] ?? "")
      : h("input", { type: "text", "data-loc": at(name), value: action[name] ?? "", ...attributes });
    return field(label, bind(control, action, name), hint);
  };
  const json = (name, label, hint) =>
    field(label, bind(h("textarea", { rows: 3, "data-loc": at(name), spellcheck: "false" }, draft[name]), draft, name), hint);

  const type = h("select", { "data-loc": at("type") },
    GROUPS.map(([group, types]) => h("optgroup", { label: group }, options(types, action.type))));
  type.addEventListener("change", () => {
    for (const key of Object.keys(action)) delete action[key];
    drafts.delete(action);
    Object.assign(action, defaultAction(type.value, context.inferable()));
    context.rerender();
  });

  const fields = [];
  if (action.type === "call-webhook" || action.type === "send-notification") {
    const webhook = action.type === "call-webhook";
    const send = h("select", {}, options([
      ["url", webhook ? "A URL" : "Apprise URL(s)"],
      ["block", webhook ? "A Prefect Webhook block" : "A Prefect notification block"],
    ], draft.send));
    send.addEventListener("change", () => { draft.send = send.value; context.rerender(); });
    fields.push(field("Send to", send));
    if (draft.send === "block") {
      fields.push(text("block_document_id", "Block document ID", "The ID of the block document in Prefect."));
    } else if (webhook) {
      fields.push(text("url", "URL", null, { type: "url", placeholder: "https://example.com/hook" }));
      const method = bind(h("select", { "data-loc": at("method") }, options(METHODS.map((m) => [m]), action.method)), action, "method");
      fields.push(field("Method", method), json("headers", "Headers (JSON)", 'For example {"Authorization": "Bearer …"}'));
    } else {
      const urls = h("textarea", { rows: 2, "data-loc": at("url"), spellcheck: "false" },
        (Array.isArray(action.url) ? action.url : [action.url ?? ""]).join("\n"));
      fields.push(field("Notification URL(s)", bind(urls, action, "url"), "Apprise URLs, one per line: json://host/path, mailto://…, slack://…"));
    }
    if (webhook) {
      fields.push(text("payload", "Payload (template)", "Jinja: {{ event.event }}, {{ event.resource['prefect.resource.id'] }}, {{ automation.name }}, {{ labels }}, {{ firing.state }}", { rows: 3 }));
    } else {
      fields.push(text("subject", "Subject (template)"), text("body", "Body (template)", "Empty: a sentence naming the automation, the firing and the event.", { rows: 3 }));
    }
  } else if (TARGET[action.type]) {
    fields.push(...targetFields(action, TARGET[action.type], at, context));
    if (action.type === "run-deployment") {
      fields.push(
        json("parameters", "Parameters (JSON, optional)", "String values are templates, e.g. {\"run\": \"{{ event.resource['prefect.resource.id'] }}\"}."),
        json("job_variables", "Job variables (JSON, optional)"),
        field("Start after (seconds)", bind(h("input", { type: "number", min: "0", step: "any", value: action.schedule_after ?? 0, "data-loc": at("schedule_after") }),
          action, "schedule_after", (e) => Number(e.value))));
    }
  } else if (isTemporal(action.type)) {
    fields.push(...temporalFields(action, at, context.rerender));
  } else if (FLOW_RUN_ACTIONS.includes(action.type)) {
    fields.push(h("p", { class: "hint" }, "Acts on the firing's flow run: the triggering event's, or the key's for a run that got stuck."));
    if (action.type === "change-flow-run-state") {
      const state = bind(h("select", { "data-loc": at("state") }, options(STATE_TYPES.map((s) => [s]), action.state)), action, "state");
      const force = bind(h("input", { type: "checkbox", checked: action.force, "data-loc": at("force") }), action, "force", (e) => e.checked);
      fields.push(field("New state", state), text("name", "State name (optional)"), text("message", "Message (optional)", null, { rows: 2 }),
        h("label", { class: "switch" }, force, "Force (even if Prefect's orchestration rules would refuse)"));
    }
  }

  return h("fieldset", { class: "actionbox", "data-loc": loc },
    h("legend", {}, title),
    field("Type", type), ...fields,
    h("p", { class: "error", hidden: true }),
    h("button", { type: "button", class: "secondary small", onclick: onRemove }, `Remove ${title.toLowerCase()}`));
}

function targetFields(action, kind, at, context) {
  const id = idField(kind);
  const source = h("select", { "data-loc": at("source") }, options([
    ["inferred", `The ${words(kind)} of the triggering event (inferred)`],
    ["selected", `A chosen ${words(kind)}`],
  ], action.source));
  source.addEventListener("change", () => {
    action.source = source.value;
    if (source.value === "inferred") action[id] = null;
    context.rerender();
  });
  const fields = [field(`Which ${words(kind)}`, source)];
  if (action.source !== "selected") return fields;
  if (kind === "automation") {
    const target = h("select", { "data-loc": at(id) },
      h("option", { value: "" }, "Choose…"),
      context.automations.map((a) => h("option", { value: a.id, selected: a.id === action[id] }, a.name)));
    fields.push(field("Automation", bind(target, action, id, (e) => e.value || null)));
  } else {
    const input = bind(h("input", { type: "text", value: action[id] ?? "", "data-loc": at(id), placeholder: "3fa85f64-5717-4562-b3fc-2c963f66afa6" }),
      action, id, (e) => e.value.trim() || null);
    fields.push(field(`${words(kind)[0].toUpperCase()}${words(kind).slice(1)} ID`, input, `Its Prefect ID (or prefect.${kind}.<id>).`));
  }
  return fields;
}

// ------------------------------------------------------------------ to the API

function parseJson(text, loc, { optional = false } = {}) {
  if (optional && !String(text).trim()) return null;
  try {
    const value = JSON.parse(text || "{}");
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("must be a JSON object");
    return value;
  } catch (error) {
    throw new FieldError(loc, `not valid JSON: ${error.message}`);
  }
}

// The action as the API takes it; throws FieldError for JSON that does not parse.
export function actionForApi(action, loc) {
  const draft = draftOf(action);
  const out = structuredClone(action);
  if (out.type === "call-webhook" || out.type === "send-notification") {
    if (draft.send === "block") {
      out.url = null;
      out.block_document_id = (out.block_document_id ?? "").trim() || null;
    } else {
      out.block_document_id = null;
      if (out.type === "call-webhook") {
        out.url = String(out.url ?? "").trim();
        out.headers = parseJson(draft.headers, `${loc}.headers`);
      } else {
        const urls = String(out.url ?? "").split("\n").map((u) => u.trim()).filter(Boolean);
        out.url = urls.length === 1 ? urls[0] : urls;
      }
    }
  }
  const kind = TARGET[out.type];
  if (kind) {
    const id = idField(kind);
    const prefix = `prefect.${kind}.`;
    if (out.source === "inferred") out[id] = null;
    else if (out[id]?.startsWith(prefix)) out[id] = out[id].slice(prefix.length);
  }
  if (out.type === "run-deployment") {
    out.parameters = parseJson(draft.parameters, `${loc}.parameters`, { optional: true });
    out.job_variables = parseJson(draft.job_variables, `${loc}.job_variables`, { optional: true });
  }
  if (out.type === "change-flow-run-state") {
    out.name = out.name?.trim() || null;
    out.message = out.message?.trim() || null;
  }
  if (isTemporal(out.type)) temporalForApi(out, action, loc);
  return out;
}
