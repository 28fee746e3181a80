// Step 3, Details: name, description, enabled, and a test on the stored events.
import { field, h } from "../dom.js";
import { testPanel } from "../testrun.js";

// `testTarget()`: what to test (the automation as the form has it), or null when the form
// cannot build it yet (it then shows why).
export function detailsStep(draft, testTarget) {
  const { details } = draft;
  const name = h("input", { type: "text", "data-loc": "name", value: details.name, required: true, autocomplete: "off" });
  name.addEventListener("input", () => { details.name = name.value; });
  const description = h("textarea", { rows: 2, "data-loc": "description" }, details.description);
  description.addEventListener("input", () => { details.description = description.value; });
  const enabled = h("input", { type: "checkbox", role: "switch", checked: details.enabled, "data-loc": "enabled" });
  enabled.addEventListener("change", () => { details.enabled = enabled.checked; });
  return {
    title: "Details",
    content: [
      field("Name", name), field("Description", description),
      h("label", { class: "switch" }, enabled, "Enabled"),
      h("h3", {}, "Test"),
      h("p", { class: "hint" }, "See when it would have fired on the stored events, and what it would have sent. Nothing is sent."),
      testPanel({ id: "wizard-test", label: "Test on stored events", target: testTarget }),
    ],
  };
}
