// The create / edit form, in three steps like Prefect's: Trigger, Actions, Details.
// Edit opens the same form on an existing automation (its trigger recognised as a template
// where it is one). Errors, the API's or the form's own, appear next to their field.
import { actionEditor, actionForApi, defaultAction } from "./actions.js";
import { ApiError, api } from "./api.js";
import { field, h, options } from "./dom.js";
import { FieldError, clearErrors, showError } from "./errors.js";
import { takeSeedTrigger } from "./feed.js";
import { testPanel } from "./testrun.js";
import {
  TEMPLATES,
  checkChoice,
  choiceFrom,
  inferableFor,
  newChoice,
  templateFields,
  triggerFrom,
} from "./triggers.js";

const STEPS = ["Trigger", "Actions", "Details"];

// The groups of actions the form edits. `actions_on_trigger` (Prefect's other name for
// "actions") only appears when an automation already has some.
const ACTION_GROUPS = [
  { key: "actions", title: "Action", heading: null, add: "Add action" },
  { key: "actions_on_trigger", title: "Also on trigger", heading: "Also when it triggers", add: null },
  { key: "actions_on_resolve", title: "On resolve", heading: "When it resolves (optional)", add: "Add action for when it resolves",
    hint: "Runs when the trigger resolves: the run moved on, the queue is healthy again." },
];

export async function renderWizard(view, automationId) {
  const [automations, existing] = await Promise.all([
    api("/automations/filter", { method: "POST", body: { sort: "NAME_ASC" } }),
    automationId ? api(`/automations/${automationId}`) : null,
  ]);
  const seed = existing ? null : takeSeedTrigger(); // "create an automation from this event"
  const choice = existing ? choiceFrom(existing.trigger) : seed ? choiceFrom(seed) : newChoice();
  const groups = Object.fromEntries(ACTION_GROUPS.map(({ key }) =>
    [key, existing ? structuredClone(existing[key]) : key === "actions" ? [defaultAction("call-webhook")] : []]));
  const details = { name: existing?.name ?? "", description: existing?.description ?? "", enabled: existing?.enabled ?? true };

  // ---- step 1: trigger
  const templateBody = h("div", {});
  const renderTemplate = () => templateBody.replaceChildren(...templateFields(choice));
  const template = h("select", { "data-loc": "trigger.template" }, options(TEMPLATES, choice.template));
  template.addEventListener("change", () => {
    // Switching to custom JSON starts from what the template had built.
    if (template.value === "custom" && choice.template !== "custom") {
      try { choice.json = JSON.stringify(triggerFrom(choice), null, 2); } catch { /* keep the old JSON */ }
    }
    choice.template = template.value;
    renderTemplate();
  });
  renderTemplate();

  // ---- step 2: actions
  const context = {
    automations: automations.filter((a) => a.id !== automationId),
    inferable: () => inferableFor(choice),
    rerender: () => renderActions(),
  };
  const actionLists = h("div", {});
  const renderActions = () => actionLists.replaceChildren(...ACTION_GROUPS.flatMap((group) => {
    const list = groups[group.key];
    if (!group.add && !list.length) return [];
    const editors = list.map((action, index) => actionEditor(action, `${group.key}.${index}`, `${group.title} ${index + 1}`, context,
      () => { list.splice(index, 1); renderActions(); }));
    const add = group.add && h("button", {
      type: "button", class: "secondary",
      onclick: () => {
        list.push(defaultAction(group.key === "actions_on_resolve" ? "do-nothing" : "call-webhook", context.inferable()));
        renderActions();
        actionLists.querySelector(`[data-loc="${group.key}.${list.length - 1}.type"]`)?.focus();
      },
    }, group.add);
    return [
      group.heading ? h("h3", {}, group.heading) : null,
      group.hint ? h("p", { class: "hint" }, group.hint) : null,
      ...editors, add,
    ].filter(Boolean);
  }));
  renderActions();

  // ---- step 3: details
  const name = h("input", { type: "text", "data-loc": "name", value: details.name, required: true, autocomplete: "off" });
  name.addEventListener("input", () => { details.name = name.value; });
  const description = h("textarea", { rows: 2, "data-loc": "description" }, details.description);
  description.addEventListener("input", () => { details.description = description.value; });
  const enabled = h("input", { type: "checkbox", role: "switch", checked: details.enabled, "data-loc": "enabled" });
  enabled.addEventListener("change", () => { details.enabled = enabled.checked; });

  const sections = [
    h("section", { "aria-labelledby": "step-0" }, h("h2", { id: "step-0" }, "Trigger"),
      field("Trigger template", template, "Start from a template, or write the trigger's JSON."), templateBody),
    h("section", { "aria-labelledby": "step-1" }, h("h2", { id: "step-1" }, "Actions"), actionLists),
    h("section", { "aria-labelledby": "step-2" }, h("h2", { id: "step-2" }, "Details"),
      field("Name", name), field("Description", description),
      h("label", { class: "switch" }, enabled, "Enabled"),
      h("h3", {}, "Test"),
      h("p", { class: "hint" }, "See when it would have fired on the stored events, and what it would have sent. Nothing is sent."),
      testPanel({ id: "wizard-test", label: "Test on stored events", target: () => {
        clearErrors(form);
        try {
          return { automation: { ...buildBody(), name: details.name || "untitled" } };
        } catch (error) {
          if (!(error instanceof FieldError)) throw error;
          showErrors([[error.loc, error.message]]);
          return null;
        }
      } })),
  ];

  // The definition as the API takes it; FieldError names what the form must fix first.
  function buildBody() {
    const problem = checkChoice(choice);
    if (problem) throw new FieldError(problem[0], problem[1]);
    const body = {
      ...details,
      tags: existing?.tags ?? [],
      trigger: triggerFrom(choice),
      ...Object.fromEntries(ACTION_GROUPS.map(({ key }) =>
        [key, groups[key].map((action, index) => actionForApi(action, `${key}.${index}`))])),
    };
    if (existing?.owner_resource) body.owner_resource = existing.owner_resource;
    return body;
  }

  // ---- navigation
  let step = 0;
  const stepButtons = STEPS.map((label, i) => h("button", { type: "button", class: "step", onclick: () => goTo(i) }, `${i + 1}. ${label}`));
  const indicator = h("ol", { class: "steps", "aria-label": "Steps" }, stepButtons.map((b) => h("li", {}, b)));
  const back = h("button", { type: "button", class: "secondary", onclick: () => goTo(step - 1) }, "Back");
  const next = h("button", { type: "button", onclick: () => forward() }, "Next");
  const save = h("button", { type: "submit" }, existing ? "Save changes" : "Create automation");
  const cancel = h("a", { href: existing ? `#/a/${existing.id}` : "#/", class: "button secondary" }, "Cancel");
  const formError = h("p", { class: "error", id: "form-error", role: "alert", hidden: true });
  const form = h("form", { class: "card wizard", novalidate: true }, ...sections, formError,
    h("div", { class: "row end" }, cancel, back, next, save));

  function goTo(target, focus = true) {
    step = Math.max(0, Math.min(STEPS.length - 1, target));
    sections.forEach((section, i) => { section.hidden = i !== step; });
    stepButtons.forEach((b, i) => b.setAttribute("aria-current", i === step ? "step" : "false"));
    back.hidden = step === 0;
    next.hidden = step === STEPS.length - 1;
    save.hidden = step !== STEPS.length - 1;
    if (focus) sections[step].querySelector("input, select, textarea")?.focus();
  }

  // Problems the form can see itself stop "Next" on the Trigger step.
  function forward() {
    if (step === 0) {
      clearErrors(form);
      const problem = checkChoice(choice);
      if (problem) {
        showError(form, problem[0].split("."), problem[1])?.focus?.();
        return;
      }
    }
    goTo(step + 1);
  }

  function showErrors(errors) {
    // Open the earliest step with an error, at its first error.
    const targets = errors.map(([loc, message]) => showError(form, loc, message));
    const stepOf = (target) => {
      const section = target.closest("section");
      return section ? sections.indexOf(section) : step;
    };
    const first = targets.reduce((best, target) => (stepOf(target) < stepOf(best) ? target : best));
    goTo(stepOf(first), false);
    (first.matches("fieldset") ? first.querySelector("input, select, textarea") : first).focus?.();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (step < STEPS.length - 1) { // Enter in a field moves on rather than saving early
      forward();
      return;
    }
    clearErrors(form);
    let body;
    try {
      body = buildBody();
    } catch (error) {
      if (!(error instanceof FieldError)) throw error;
      showErrors([[error.loc, error.message]]);
      return;
    }
    save.disabled = true;
    try {
      const saved = existing
        ? await api(`/automations/${existing.id}`, { method: "PUT", body })
        : await api("/automations/", { method: "POST", body });
      location.hash = `#/a/${saved.id}`;
    } catch (error) {
      const detail = error instanceof ApiError && Array.isArray(error.detail) ? error.detail : null;
      showErrors(detail ? detail.map((d) => [d.loc, d.msg]) : [[[], error.message]]);
    } finally {
      save.disabled = false;
    }
  });

  view.replaceChildren(h("h1", {}, existing ? `Edit ${existing.name}` : "New automation"), indicator, form);
  goTo(0);
}
