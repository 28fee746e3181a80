// The page's router (#/, #/new, #/edit/<id>, #/a/<id>) and the API key prompt.
import { Unauthorized, api, setApiKey } from "./api.js";
import { renderDetail } from "./detail.js";
import { field, h } from "./dom.js";
import { renderList } from "./list.js";
import { renderWizard } from "./wizard.js";

const view = document.getElementById("view");
let config = { temporal_ui_url: null, namespace: "default", auth_required: false };

function askForKey(retry) {
  const input = h("input", { type: "password", autocomplete: "off", id: "api-key" });
  const form = h("form", { class: "card" },
    h("h1", {}, "API key needed"),
    h("p", {}, "This server requires an API key. It is kept for this browser session only."),
    field("API key", input),
    h("div", { class: "row end" }, h("button", { type: "submit" }, "Continue")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value);
    retry();
  });
  view.replaceChildren(form);
  input.focus();
}

async function route() {
  const [, page, id] = location.hash.replace(/^#\/?/, "").match(/^([a-z]*)\/?(.*)$/) || [];
  try {
    if (page === "new") await renderWizard(view);
    else if (page === "edit") await renderWizard(view, id);
    else if (page === "a") await renderDetail(view, id, config);
    else await renderList(view);
    view.focus();
  } catch (error) {
    if (error instanceof Unauthorized) askForKey(route);
    else view.replaceChildren(h("div", { class: "card", role: "alert" }, h("h1", {}, "Something went wrong"), h("p", {}, error.message)));
  }
}

async function start() {
  try {
    config = await api("/ui-config");
  } catch {
    // the page still works without the Web UI link
  }
  window.addEventListener("hashchange", route);
  await route();
}

start();
