// Trigger templates: each builds Prefect's event-trigger JSON from a few choices, and an
// existing trigger is recognised as the template that would build it (so Edit shows the
// same simple fields, and the list can say it in words).
import { bind, field, h, options } from "./dom.js";
import {
  TEMPORAL_CHOICE, TEMPORAL_TEMPLATES, describeTemporalTrigger, temporalCandidates, temporalFits,
  temporalTemplateFields, temporalTriggerFrom,
} from "./temporal.js";

export const FLOW_RUN = "prefect.flow-run.";
export const WORK_QUEUE = "prefect.work-queue.";
export const DEPLOYMENT = "prefect.deployment.";
const RESOURCE_ID = "prefect.resource.id";

export const FLOW_RUN_STATES = [
  "Scheduled", "Pending", "Running", "Completed", "Failed", "Crashed",
  "Cancelling", "Cancelled", "Paused", "Suspended", "Late",
];
const STUCK_STATES = ["Running", "Pending", "Scheduled", "Late", "Cancelling", "Paused", "Suspended"];
const QUEUE_STATUSES = ["not-ready", "paused", "ready"];
const DEPLOYMENT_STATUSES = ["not-ready", "ready"];

export const TEMPLATES = [
  ["flow-run-state", "Flow run state change"],
  ["flow-run-stuck", "Flow run stuck in a state"],
  ["work-queue", "Work queue health"],
  ["deployment", "Deployment status"],
  ...TEMPORAL_TEMPLATES,
  ["compound", "Two or three triggers together"],
  ["custom", "Custom (JSON)"],
];
// The templates a compound's children may use (deeper composites are written as JSON).
const CHILD_TEMPLATES = TEMPLATES.filter(([key]) => key !== "compound" && key !== "custom");

// Which resources an action can infer from the events each template matches.
export const INFERABLE = {
  "flow-run-state": ["flow-run", "deployment", "work-queue", "work-pool"],
  "flow-run-stuck": ["flow-run", "deployment", "work-queue", "work-pool"],
  "work-queue": ["work-queue", "work-pool"],
  deployment: ["deployment"],
  compound: [],
  custom: [],
};

// What an action can infer: for a compound, what any of its triggers can.
export function inferableFor(choice) {
  if (choice.template !== "compound") return INFERABLE[choice.template] ?? [];
  return [...new Set(choice.children.flatMap((child) => INFERABLE[child.template] ?? []))];
}

export function newChoice() {
  return {
    template: "flow-run-state",
    states: ["Crashed", "Failed"],
    stuckState: "Running",
    minutes: 30,
    queueStatus: "not-ready",
    queueMinutes: 10,
    deploymentStatus: "not-ready",
    only: "",
    json: JSON.stringify({ posture: "Reactive", expect: ["my.event"] }, null, 2),
    ...TEMPORAL_CHOICE,
    require: "all",
    compoundMinutes: 10,
    children: [],
  };
}

function ensureChildren(choice) {
  while (choice.children.length < 2) choice.children.push({ ...newChoice(), children: [] });
  return choice.children;
}

// ------------------------------------------------------------------ choice -> trigger

const splitIds = (text) => String(text ?? "").split(/[\s,]+/).filter(Boolean);

function resourceIds(kind, text) {
  const prefix = `prefect.${kind}.`;
  const ids = splitIds(text).map((id) => (id.startsWith(prefix) ? id : prefix + id));
  return ids.length === 1 ? ids[0] : ids;
}

const onlyThese = (kind, text) => ({ [RESOURCE_ID]: splitIds(text).length ? resourceIds(kind, text) : `prefect.${kind}.*` });

const ofDeployments = (text) =>
  splitIds(text).length ? { "prefect.resource.role": "deployment", [RESOURCE_ID]: resourceIds("deployment", text) } : {};

const others = (all, one) => all.filter((s) => s !== one);

export function triggerFrom(choice) {
  switch (choice.template) {
    case "compound": {
      const minutes = Number(choice.compoundMinutes);
      return {
        type: "compound", require: choice.require, within: minutes > 0 ? minutes * 60 : null,
        triggers: ensureChildren(choice).map(triggerFrom),
      };
    }
    case "flow-run-state":
      return {
        posture: "Reactive", match: onlyThese("flow-run", ""), match_related: ofDeployments(choice.only),
        expect: choice.states.map((s) => FLOW_RUN + s), for_each: [RESOURCE_ID],
      };
    case "flow-run-stuck":
      return {
        posture: "Proactive", match: onlyThese("flow-run", ""), match_related: ofDeployments(choice.only),
        after: [FLOW_RUN + choice.stuckState],
        expect: others(FLOW_RUN_STATES, choice.stuckState).map((s) => FLOW_RUN + s),
        for_each: [RESOURCE_ID], within: Number(choice.minutes) * 60,
      };
    case "work-queue":
      return Number(choice.queueMinutes) > 0
        ? {
            posture: "Proactive", match: onlyThese("work-queue", choice.only), for_each: [RESOURCE_ID],
            after: [WORK_QUEUE + choice.queueStatus],
            expect: others(QUEUE_STATUSES, choice.queueStatus).map((s) => WORK_QUEUE + s),
            within: Number(choice.queueMinutes) * 60,
          }
        : {
            posture: "Reactive", match: onlyThese("work-queue", choice.only), for_each: [RESOURCE_ID],
            expect: [WORK_QUEUE + choice.queueStatus],
          };
    case "deployment":
      return {
        posture: "Reactive", match: onlyThese("deployment", choice.only), for_each: [RESOURCE_ID],
        expect: [DEPLOYMENT + choice.deploymentStatus],
      };
    default:
      return temporalTriggerFrom(choice) ?? JSON.parse(choice.json);
  }
}

// ------------------------------------------------------------------ trigger -> choice

// A trigger as the API would store it, with defaults filled in and keys in one order.
function canonical(trigger) {
  const set = (list) => [...new Set(list ?? [])].sort();
  let within = Number(trigger.within ?? 0);
  if (trigger.posture === "Proactive" && within === 0) within = 10;
  return stableJson({
    match: trigger.match ?? {}, match_related: trigger.match_related ?? {},
    after: set(trigger.after), expect: set(trigger.expect), for_each: set(trigger.for_each),
    posture: trigger.posture, threshold: trigger.threshold ?? 1, within,
  });
}

function stableJson(value) {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${stableJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const stripped = (names, prefix) => (names ?? []).filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));

function idsIn(value, kind) {
  const prefix = `prefect.${kind}.`;
  const list = Array.isArray(value) ? value : value ? [value] : [];
  return list.filter((v) => v !== `${prefix}*`).map((v) => (v.startsWith(prefix) ? v.slice(prefix.length) : v)).join(", ");
}

// The template (with its choices) that builds exactly this trigger, or a custom choice.
export function choiceFrom(trigger) {
  const base = newChoice();
  if (trigger.type === "compound" || trigger.type === "sequence") {
    const children = (trigger.triggers ?? []).map(choiceFrom);
    const simple = trigger.type === "compound" && children.length >= 2 && children.length <= 3
      && ["any", "all"].includes(trigger.require) && children.every((c) => c.template !== "custom" && c.template !== "compound");
    if (simple) {
      return { ...base, template: "compound", require: trigger.require, compoundMinutes: (trigger.within ?? 0) / 60, children };
    }
    const { id, ...rest } = trigger;
    return { ...base, template: "custom", json: JSON.stringify(rest, null, 2) };
  }
  const related = Array.isArray(trigger.match_related) ? {} : trigger.match_related ?? {};
  const ranOf = idsIn(related[RESOURCE_ID], "deployment");
  const matched = (kind) => idsIn(trigger.match?.[RESOURCE_ID], kind);
  const within = Number(trigger.within ?? 0);
  const candidates = [
    { template: "flow-run-state", states: stripped(trigger.expect, FLOW_RUN), only: ranOf },
    { template: "flow-run-stuck", stuckState: stripped(trigger.after, FLOW_RUN)[0], minutes: within / 60, only: ranOf },
    {
      template: "work-queue",
      queueStatus: stripped(trigger.after?.length ? trigger.after : trigger.expect, WORK_QUEUE)[0],
      queueMinutes: trigger.posture === "Proactive" ? within / 60 : 0, only: matched("work-queue"),
    },
    { template: "deployment", deploymentStatus: stripped(trigger.expect, DEPLOYMENT)[0], only: matched("deployment") },
    ...temporalCandidates(trigger),
  ];
  const wanted = canonical(trigger);
  for (const candidate of candidates) {
    const choice = { ...base, ...candidate };
    if (!fits(choice)) continue;
    if (canonical(triggerFrom(choice)) === wanted) return choice;
  }
  const { id, type, ...rest } = trigger;
  return { ...base, template: "custom", json: JSON.stringify(rest, null, 2) };
}

// Only choices the form can show.
function fits(choice) {
  switch (choice.template) {
    case "flow-run-state": return choice.states.length > 0 && choice.states.every((s) => FLOW_RUN_STATES.includes(s));
    case "flow-run-stuck": return STUCK_STATES.includes(choice.stuckState);
    case "work-queue": return QUEUE_STATUSES.includes(choice.queueStatus);
    case "deployment": return DEPLOYMENT_STATUSES.includes(choice.deploymentStatus);
    default: return choice.template.startsWith("temporal-") && temporalFits(choice);
  }
}

// ------------------------------------------------------------------ in words

export function duration(seconds) {
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

const or = (list) => list.join(" or ");
const onlyWords = (text, what) => {
  const ids = splitIds(text);
  if (!ids.length) return "";
  return ` (${what} ${ids.map((id) => id.slice(0, 8)).join(", ")})`;
};

export function describeTrigger(trigger) {
  if (trigger.type === "compound" || trigger.type === "sequence") return describeComposite(trigger);
  const choice = choiceFrom(trigger);
  switch (choice.template) {
    case "flow-run-state":
      return `When a flow run enters ${or(choice.states)}${onlyWords(choice.only, "of deployment")}`;
    case "flow-run-stuck":
      return `When a flow run stays ${choice.stuckState} for ${duration(trigger.within)}${onlyWords(choice.only, "of deployment")}`;
    case "work-queue":
      return Number(choice.queueMinutes) > 0
        ? `When a work queue stays ${choice.queueStatus} for ${duration(trigger.within)}${onlyWords(choice.only, "queue")}`
        : `When a work queue becomes ${choice.queueStatus}${onlyWords(choice.only, "queue")}`;
    case "deployment":
      return `When a deployment becomes ${choice.deploymentStatus}${onlyWords(choice.only, "deployment")}`;
    default:
      return describeTemporalTrigger(choice, trigger, duration) ?? describeLoosely(trigger) ?? describeCustom(trigger);
  }
}

// Composites (edited as JSON): their children in words, nested in brackets.
function describeComposite({ type, require = "all", within = null, triggers = [] }) {
  const parts = triggers.map((child) => `(${describeTrigger(child)})`);
  const span = within ? ` within ${duration(within)}` : "";
  if (type === "sequence") return `In this order${span}: ${parts.join(", then ")}`;
  const how = require === "any" ? "Any" : require === "all" ? "All" : `${require}`;
  return `${how} of${span}: ${parts.join("; ")}`;
}

// Triggers written by hand (or by Prefect's own tools) that still read like a template.
function describeLoosely({ posture, after = [], expect = [], within = 0, threshold = 1 }) {
  const only = (names, prefix) => names.length > 0 && names.every((n) => n.startsWith(prefix));
  if (threshold !== 1) return null;
  for (const [prefix, what] of [[FLOW_RUN, "flow run"], [WORK_QUEUE, "work queue"], [DEPLOYMENT, "deployment"]]) {
    const states = (names) => or(names.map((n) => n.slice(prefix.length)));
    if (posture === "Proactive" && after.length && only(after, prefix) && (!expect.length || only(expect, prefix))) {
      return `When a ${what} stays ${states(after)} for ${duration(within || 10)}`;
    }
    if (posture === "Reactive" && !after.length && only(expect, prefix)) {
      return `When a ${what} ${prefix === FLOW_RUN ? "enters" : "becomes"} ${states(expect)}`;
    }
  }
  return null;
}

function describeCustom({ posture, after = [], expect = [], within = 0, threshold = 1, for_each = [] }) {
  const events = expect.length ? or(expect) : "any event";
  const since = after.length ? ` after ${or(after)}` : "";
  const each = for_each.length ? ` for each ${for_each.join(", ")}` : "";
  if (posture === "Proactive") {
    const count = threshold > 1 ? `fewer than ${threshold} × ${events}` : `no ${events}`;
    return `When ${count} arrives within ${duration(within || 10)}${since}${each}`;
  }
  const window = within ? ` within ${duration(within)}` : "";
  return threshold > 1
    ? `When ${threshold} × ${events} happen${window}${since}${each}`
    : `When ${events} happens${since}${each}`;
}

// ------------------------------------------------------------------ the form's fields

// The fields of the Trigger step for the chosen template; `data-loc` names the part of the
// trigger each one builds, so the API's 422 errors land next to it.
export function templateFields(choice) {
  const select = (key, values, loc) =>
    bind(h("select", { "data-loc": loc }, options(values.map((v) => [v]), choice[key])), choice, key);
  const minutes = (key, loc) =>
    bind(h("input", { type: "number", min: "0", step: "any", value: choice[key], "data-loc": loc }), choice, key);
  const only = (loc) => bind(h("input", { type: "text", value: choice.only, "data-loc": loc, placeholder: "any" }), choice, "only");
  switch (choice.template) {
    case "compound":
      return compoundFields(choice);
    case "flow-run-state":
      return [statesFieldset(choice),
        field("Only runs of these deployments (optional)", only("trigger.match_related"), "Deployment IDs, separated by commas; empty means every flow run.")];
    case "flow-run-stuck":
      return [
        field("When a flow run stays in", select("stuckState", STUCK_STATES, "trigger.after")),
        field("For (minutes)", minutes("minutes", "trigger.within"), "Fires at the deadline if the run has not moved on to another state."),
        field("Only runs of these deployments (optional)", only("trigger.match_related"), "Deployment IDs, separated by commas; empty means every flow run."),
      ];
    case "work-queue":
      return [
        field("When a work queue becomes", select("queueStatus", QUEUE_STATUSES, "trigger.after")),
        field("And stays so for (minutes)", minutes("queueMinutes", "trigger.within"), "0 fires at once; otherwise it resolves when the queue recovers."),
        field("Only these work queues (optional)", only("trigger.match"), "Work queue IDs, separated by commas; empty means every work queue."),
      ];
    case "deployment":
      return [
        field("When a deployment becomes", select("deploymentStatus", DEPLOYMENT_STATUSES, "trigger.expect")),
        field("Only these deployments (optional)", only("trigger.match"), "Deployment IDs, separated by commas; empty means every deployment."),
      ];
    default:
      if (choice.template.startsWith("temporal-")) return temporalTemplateFields(choice);
      return [field("Trigger (JSON)", bind(h("textarea", { rows: 12, "data-loc": "trigger", spellcheck: "false" }, choice.json), choice, "json"),
        "Prefect's event trigger: posture (Reactive or Proactive), expect, after, match, match_related, for_each, threshold, within (seconds).")];
  }
}

// A compound of two or three template triggers: each child in a fieldset of its own.
function compoundFields(choice) {
  const children = ensureChildren(choice);
  const body = h("div", {});
  const render = () => body.replaceChildren(...children.map((child, index) => {
    const fields = h("div", {}, ...templateFields(child));
    const template = h("select", { "data-loc": `trigger.triggers.${index}` }, options(CHILD_TEMPLATES, child.template));
    template.addEventListener("change", () => {
      child.template = template.value;
      fields.replaceChildren(...templateFields(child));
    });
    const remove = children.length > 2 && h("button", {
      type: "button", class: "secondary", onclick: () => { children.splice(index, 1); render(); },
    }, `Remove trigger ${index + 1}`);
    return h("fieldset", { class: "child-trigger" }, h("legend", {}, `Trigger ${index + 1}`),
      field(`Trigger ${index + 1} template`, template), fields, remove || null);
  }), children.length < 3 ? h("button", {
    type: "button", class: "secondary",
    onclick: () => { children.push({ ...newChoice(), children: [] }); render(); },
  }, "Add a third trigger") : null);
  render();
  const require = bind(h("select", { "data-loc": "trigger.require" },
    options([["all", "all of these triggers have fired"], ["any", "any of these triggers fires"]], choice.require)), choice, "require");
  const minutes = bind(h("input", { type: "number", min: "0", step: "any", value: choice.compoundMinutes, "data-loc": "trigger.within" }),
    choice, "compoundMinutes");
  return [
    field("Fires when", require),
    field("Within (minutes)", minutes, "How close together their firings must be; 0 means no limit."),
    body,
  ];
}

function statesFieldset(choice) {
  const group = h("fieldset", { "data-loc": "trigger.expect", "aria-describedby": "states-error" },
    h("legend", {}, "When a flow run enters"));
  const boxes = FLOW_RUN_STATES.map((state) => {
    const box = h("input", { type: "checkbox", value: state, checked: choice.states.includes(state) });
    box.addEventListener("change", () => {
      choice.states = boxes.filter((b) => b.checked).map((b) => b.value);
    });
    return box;
  });
  group.append(
    h("div", { class: "checks" }, boxes.map((box) => h("label", {}, box, box.value))),
    h("p", { class: "error", id: "states-error", hidden: true }));
  return group;
}

// Checks the form can make before asking the API; returns [loc, message] or null.
export function checkChoice(choice) {
  if (choice.template === "compound") {
    for (const child of ensureChildren(choice)) {
      const problem = checkChoice(child);
      if (problem) return problem;
    }
    return null;
  }
  if (choice.template === "flow-run-state" && choice.states.length === 0) {
    return ["trigger.expect", "choose at least one state"];
  }
  if (choice.template === "custom") {
    try {
      const parsed = JSON.parse(choice.json);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return ["trigger", "must be a JSON object"];
    } catch (error) {
      return ["trigger", `not valid JSON: ${error.message}`];
    }
  }
  return null;
}
