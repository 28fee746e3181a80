// The create / edit form, in three steps like Prefect's: Trigger, Actions, Details (one module
// each under wizard/, and wizard/stepper.js moving between them). Edit opens the same form on
// an existing automation (its trigger recognised as a template where it is one). Errors, the
// API's or the form's own, appear next to their field.
import { api } from "./api.js";
import { h } from "./dom.js";
import { takeSeedTrigger } from "./feed.js";
import { actionsStep } from "./wizard/actions-step.js";
import { detailsStep } from "./wizard/details-step.js";
import { bodyFrom, draftFrom } from "./wizard/draft.js";
import { stepper } from "./wizard/stepper.js";
import { triggerStep } from "./wizard/trigger-step.js";

// `nav`: this view's navigation (main.js).
export async function renderWizard(nav, automationId) {
  const { signal } = nav;
  const [automations, existing] = await Promise.all([
    api("/automations/filter", { method: "POST", body: { sort: "NAME_ASC" }, signal }),
    automationId ? api(`/automations/${automationId}`, { signal }) : null,
  ]);
  // "Create an automation from this event" (the feed) seeds a new one's trigger; taken only
  // once this view is still the one to show.
  const seed = existing || !nav.current ? null : takeSeedTrigger();
  const draft = draftFrom(existing, seed);

  const testTarget = () => {
    const body = wizard.attempt();
    return body && { automation: { ...body, name: draft.details.name || "untitled" } };
  };
  const wizard = stepper(
    [
      triggerStep(draft),
      actionsStep(draft, automations.filter((a) => a.id !== automationId)),
      detailsStep(draft, testTarget),
    ],
    {
      saveLabel: existing ? "Save changes" : "Create automation",
      cancelHref: existing ? `#/a/${existing.id}` : "#/",
      build: () => bodyFrom(draft),
      save: async (body) => {
        const saved = existing
          ? await api(`/automations/${existing.id}`, { method: "PUT", body })
          : await api("/automations/", { method: "POST", body });
        location.hash = `#/a/${saved.id}`;
      },
    },
  );

  nav.show(h("h1", {}, existing ? `Edit ${existing.name}` : "New automation"), wizard.indicator, wizard.form);
  wizard.goTo(0);
}
