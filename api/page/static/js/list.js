// The list: every automation with its summary, counters, toggle and menu.
import { api } from "./api.js";
import { describeActions, describeTrigger, when } from "./describe.js";
import { h, toast } from "./dom.js";

async function withStatus(automation) {
  try {
    const status = await api(`/automations/${automation.id}/status`);
    return { automation, stats: status.stats };
  } catch {
    return { automation, stats: null };
  }
}

function confirmDelete(automation) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent =
    `"${automation.name}" will stop and be removed. This cannot be undone.`;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
  });
}

function menu(automation, rerender) {
  const list = h("ul", { role: "menu", hidden: true });
  const toggle = h("button", {
    class: "icon", "aria-haspopup": "menu", "aria-expanded": "false",
    "aria-label": `More actions for ${automation.name}`,
  }, "⋯");
  const close = () => { list.hidden = true; toggle.setAttribute("aria-expanded", "false"); };
  toggle.addEventListener("click", () => {
    list.hidden = !list.hidden;
    toggle.setAttribute("aria-expanded", String(!list.hidden));
    if (!list.hidden) list.querySelector("button").focus();
  });
  list.addEventListener("keydown", (event) => { if (event.key === "Escape") { close(); toggle.focus(); } });
  const item = (label, action) =>
    h("li", { role: "none" }, h("button", { role: "menuitem", onclick: async () => { close(); await action(); } }, label));
  list.append(
    item("Copy ID", async () => {
      await navigator.clipboard.writeText(automation.id);
      toast("ID copied to the clipboard");
    }),
    item("Edit", () => { location.hash = `#/edit/${automation.id}`; }),
    item("Delete", async () => {
      if (!(await confirmDelete(automation))) return;
      await api(`/automations/${automation.id}`, { method: "DELETE" });
      toast(`Deleted ${automation.name}`);
      await rerender();
    }),
  );
  return h("div", { class: "menu" }, toggle, list);
}

function row({ automation, stats }, rerender) {
  const switchInput = h("input", {
    type: "checkbox", role: "switch", checked: automation.enabled,
    "aria-label": `Enabled: ${automation.name}`,
  });
  const label = h("span", {}, automation.enabled ? "On" : "Paused");
  // The label says what the API confirmed, not what was clicked.
  switchInput.addEventListener("change", async () => {
    switchInput.disabled = true;
    try {
      const updated = await api(`/automations/${automation.id}`, {
        method: "PATCH", body: { enabled: switchInput.checked },
      });
      switchInput.checked = updated.enabled;
      label.textContent = updated.enabled ? "On" : "Paused";
      toast(updated.enabled ? `${automation.name} is on` : `${automation.name} is paused`);
    } catch (error) {
      switchInput.checked = !switchInput.checked;
      toast(`Could not change it: ${error.message}`);
    } finally {
      switchInput.disabled = false;
    }
  });
  return h("article", { class: "card automation", dataset: { id: automation.id } },
    h("a", { class: "name", href: `#/a/${automation.id}` }, automation.name),
    h("div", { class: "controls" },
      h("label", { class: "switch" }, switchInput, label),
      menu(automation, rerender)),
    automation.description ? h("div", { class: "meta" }, automation.description) : null,
    h("div", { class: "summary" }, describeTrigger(automation.trigger), " → ", describeActions(automation)),
    h("div", { class: "meta" },
      `Last fired: ${when(stats?.last_fired)} · Fired ${stats?.firings ?? 0} time${stats?.firings === 1 ? "" : "s"}`),
  );
}

export async function renderList(view) {
  const automations = await api("/automations/filter", { method: "POST", body: { sort: "NAME_ASC" } });
  const rows = await Promise.all(automations.map(withStatus));
  const rerender = () => renderList(view);
  view.replaceChildren(
    h("div", { class: "row spread" },
      h("h1", {}, "Automations"),
      h("a", { class: "button add", href: "#/new", "aria-label": "Create automation", title: "Create automation" }, "+")),
    rows.length
      ? h("div", { class: "list" }, rows.map((r) => row(r, rerender)))
      : h("div", { class: "card empty" },
          h("h2", {}, "No automations yet"),
          h("p", {}, "Create your first one with the + button: pick a trigger, the actions to run, and a name."),
          h("p", {}, "Or POST its JSON to ", h("code", {}, "/api/automations/"), ".")),
  );
}
