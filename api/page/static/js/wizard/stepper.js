// A form in steps (Trigger, Actions, Details): a step indicator, Back / Next / Save, and the
// errors (the API's or the form's own) shown next to their field, in the earliest step that
// has one. A step is `{ title, content: [nodes], check?() }`; `check` returns a problem
// `[loc, message]` that stops "Next", or null.
import { ApiError } from "../api.js";
import { h } from "../dom.js";
import { FieldError, clearErrors, showError } from "../errors.js";

// `build()`: the body to save (or throws FieldError); `save(body)`: sends it.
export function stepper(steps, { saveLabel, cancelHref, build, save }) {
  let step = 0;
  const last = steps.length - 1;
  const sections = steps.map(({ title, content }, i) =>
    h("section", { "aria-labelledby": `step-${i}` }, h("h2", { id: `step-${i}` }, title), ...content));
  const stepButtons = steps.map(({ title }, i) =>
    h("button", { type: "button", class: "step", onclick: () => goTo(i) }, `${i + 1}. ${title}`));
  const indicator = h("ol", { class: "steps", "aria-label": "Steps" }, stepButtons.map((b) => h("li", {}, b)));
  const back = h("button", { type: "button", class: "secondary", onclick: () => goTo(step - 1) }, "Back");
  const next = h("button", { type: "button", onclick: () => forward() }, "Next");
  const saveButton = h("button", { type: "submit" }, saveLabel);
  const cancel = h("a", { href: cancelHref, class: "button secondary" }, "Cancel");
  const formError = h("p", { class: "error", id: "form-error", role: "alert", hidden: true });
  const form = h("form", { class: "card wizard", novalidate: true }, ...sections, formError,
    h("div", { class: "row end" }, cancel, back, next, saveButton));

  function goTo(target, focus = true) {
    step = Math.max(0, Math.min(last, target));
    sections.forEach((section, i) => { section.hidden = i !== step; });
    stepButtons.forEach((b, i) => b.setAttribute("aria-current", i === step ? "step" : "false"));
    back.hidden = step === 0;
    next.hidden = step === last;
    saveButton.hidden = step !== last;
    if (focus) sections[step].querySelector("input, select, textarea")?.focus();
  }

  function forward() {
    const check = steps[step].check;
    if (check) {
      clearErrors(form);
      const problem = check();
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

  // The body, or null when the form found a problem itself (then shown at its field).
  function attempt() {
    clearErrors(form);
    try {
      return build();
    } catch (error) {
      if (!(error instanceof FieldError)) throw error;
      showErrors([[error.loc, error.message]]);
      return null;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (step < last) { // Enter in a field moves on rather than saving early
      forward();
      return;
    }
    const body = attempt();
    if (body === null) return;
    saveButton.disabled = true;
    try {
      await save(body);
    } catch (error) {
      const detail = error instanceof ApiError && Array.isArray(error.detail) ? error.detail : null;
      showErrors(detail ? detail.map((d) => [d.loc, d.msg]) : [[[], error.message]]);
    } finally {
      saveButton.disabled = false;
    }
  });

  return { form, indicator, goTo, attempt };
}
