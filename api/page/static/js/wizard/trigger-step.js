// Step 1, Trigger: a template (or the trigger's JSON) and its fields.
import { field, h, options } from "../dom.js";
import { TEMPLATES, checkChoice, templateFields, triggerFrom } from "../triggers.js";

export function triggerStep(draft) {
  const { choice } = draft;
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
  return {
    title: "Trigger",
    content: [field("Trigger template", template, "Start from a template, or write the trigger's JSON."), templateBody],
    // Problems the form can see itself stop "Next" here.
    check: () => checkChoice(choice),
  };
}
