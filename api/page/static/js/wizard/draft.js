// What the wizard edits (a "draft"): the trigger as a template choice, the action groups, the
// details; and the definition the API takes, built from it.
import { actionForApi, defaultAction } from "../actions.js";
import { FieldError } from "../errors.js";
import { checkChoice, choiceFrom, newChoice, triggerFrom } from "../triggers.js";

// The groups of actions the form edits. `actions_on_trigger` (Prefect's other name for
// "actions") only appears when an automation already has some.
export const ACTION_GROUPS = [
  { key: "actions", title: "Action", heading: null, add: "Add action" },
  { key: "actions_on_trigger", title: "Also on trigger", heading: "Also when it triggers", add: null },
  { key: "actions_on_resolve", title: "On resolve", heading: "When it resolves (optional)", add: "Add action for when it resolves",
    hint: "Runs when the trigger resolves: the run moved on, the queue is healthy again." },
];

// `existing`: the automation edited (or null for a new one); `seed`: a trigger to start from.
export function draftFrom(existing, seed) {
  return {
    existing,
    choice: existing ? choiceFrom(existing.trigger) : seed ? choiceFrom(seed) : newChoice(),
    groups: Object.fromEntries(ACTION_GROUPS.map(({ key }) =>
      [key, existing ? structuredClone(existing[key]) : key === "actions" ? [defaultAction("call-webhook")] : []])),
    details: { name: existing?.name ?? "", description: existing?.description ?? "", enabled: existing?.enabled ?? true },
  };
}

// The definition as the API takes it; FieldError names what the form must fix first.
export function bodyFrom(draft) {
  const problem = checkChoice(draft.choice);
  if (problem) throw new FieldError(problem[0], problem[1]);
  const { existing } = draft;
  const body = {
    ...draft.details,
    tags: existing?.tags ?? [],
    trigger: triggerFrom(draft.choice),
    ...Object.fromEntries(ACTION_GROUPS.map(({ key }) =>
      [key, draft.groups[key].map((action, index) => actionForApi(action, `${key}.${index}`))])),
  };
  if (existing?.owner_resource) body.owner_resource = existing.owner_resource;
  return body;
}
