// Validation errors shown next to the field they concern. Every form control that builds a
// part of the automation carries `data-loc` (e.g. "trigger.within", "actions.0.url"); an error's
// location (FastAPI's 422 `loc`, or one the form found itself) goes to the control with the
// longest matching `data-loc`.

// A problem the form finds before asking the API (e.g. JSON that does not parse).
export class FieldError extends Error {
  constructor(loc, message) {
    super(message);
    this.loc = loc;
  }
}

const ACTION_GROUPS = ["actions", "actions_on_trigger", "actions_on_resolve"];

// FastAPI's loc: ["body", "actions", 0, "call-webhook", "url"]; the action's type (pydantic's
// discriminator tag) is not a field of the form, so it is dropped.
export function normalizeLoc(loc) {
  const parts = (Array.isArray(loc) ? loc : String(loc).split(".")).map(String);
  if (parts[0] === "body") parts.shift();
  if (ACTION_GROUPS.includes(parts[0]) && /^\d+$/.test(parts[1] ?? "") && /^[a-z]+(-[a-z]+)+$/.test(parts[2] ?? "")) {
    parts.splice(2, 1);
  }
  return parts;
}

export function friendly(message) {
  return String(message)
    .replace(/^Value error, /, "")
    .replace("String should match pattern '^https?://'", "must start with http:// or https://")
    .replace("String should have at least 1 character", "is required")
    .replace(/^Input should be a valid UUID.*/, "must be an ID like 3fa85f64-5717-4562-b3fc-2c963f66afa6");
}

export function clearErrors(form) {
  for (const box of form.querySelectorAll(".error")) {
    box.hidden = true;
    box.textContent = "";
  }
  for (const bad of form.querySelectorAll("[aria-invalid]")) bad.removeAttribute("aria-invalid");
}

// Show one error; returns the element it marked (to open its step and focus it).
export function showError(form, loc, message) {
  const parts = normalizeLoc(loc);
  let text = friendly(message);
  for (let n = parts.length; n > 0; n--) {
    let target = form.querySelector(`[data-loc="${CSS.escape(parts.slice(0, n).join("."))}"]`);
    if (!target) continue;
    if (n < parts.length) text = `${parts.slice(n).join(".")}: ${text}`;
    // An error about a whole action ("deployment_id is required…") goes to the field it names.
    if (target.tagName === "FIELDSET") {
      const named = [...target.querySelectorAll("[data-loc]")]
        .map((el) => [text.indexOf(el.dataset.loc.split(".").pop()), el])
        .filter(([at]) => at >= 0)
        .sort(([a], [b]) => a - b)[0];
      if (named) target = named[1];
    }
    const box = target.tagName === "FIELDSET"
      ? target.querySelector(":scope > .error")
      : form.querySelector(`#${CSS.escape(target.id)}-error`);
    put(box ?? form.querySelector("#form-error"), text);
    target.setAttribute("aria-invalid", "true");
    return target;
  }
  const general = form.querySelector("#form-error");
  put(general, parts.length ? `${parts.join(".")}: ${text}` : text);
  return general;
}

function put(box, text) {
  box.textContent = box.hidden || !box.textContent ? text : `${box.textContent} ${text}`;
  box.hidden = false;
}
