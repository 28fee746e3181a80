// Step 2, Actions: an editor per action, in its group (actions, on trigger, on resolve).
import { actionEditor, defaultAction } from "../actions.js";
import { h } from "../dom.js";
import { inferableFor } from "../triggers.js";
import { ACTION_GROUPS } from "./draft.js";

// `others`: the other automations (the actions that pause or resume one pick from them).
export function actionsStep(draft, others) {
  const { groups } = draft;
  const context = {
    automations: others,
    inferable: () => inferableFor(draft.choice),
    rerender: () => render(),
  };
  const lists = h("div", {});
  const groupNodes = (group) => {
    const list = groups[group.key];
    if (!group.add && !list.length) return [];
    const editors = list.map((action, index) => actionEditor(action, `${group.key}.${index}`, `${group.title} ${index + 1}`, context,
      () => { list.splice(index, 1); render(); }));
    const add = group.add && h("button", {
      type: "button", class: "secondary",
      onclick: () => {
        list.push(defaultAction(group.key === "actions_on_resolve" ? "do-nothing" : "call-webhook", context.inferable()));
        render();
        lists.querySelector(`[data-loc="${group.key}.${list.length - 1}.type"]`)?.focus();
      },
    }, group.add);
    return [
      group.heading ? h("h3", {}, group.heading) : null,
      group.hint ? h("p", { class: "hint" }, group.hint) : null,
      ...editors, add,
    ].filter(Boolean);
  };
  const render = () => lists.replaceChildren(...ACTION_GROUPS.flatMap(groupNodes));
  render();
  return { title: "Actions", content: [lists] };
}
