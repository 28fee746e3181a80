// The page's router (#/, #/new, #/edit/<id>, #/a/<id>, #/events) and the API key prompt.
import { Abandoned, Unauthorized, borrowApiKey, hasApiKey, setApiKey } from "./api.js";
import { renderDetail } from "./detail.js";
import { renderFeed } from "./feed.js";
import { field, h, hideToast } from "./dom.js";
import { renderList } from "./list.js";
import { renderWizard } from "./wizard.js";

const view = document.getElementById("view");
let config = { temporal_ui_url: null, namespace: "default", auth_required: false };
let current = null; // the navigation whose view is (or is about to be) on the page
let keyTried = false; // a key was typed (so a 401 means it was wrong)
let keyRejected = false;

function askForKey() {
  const input = h("input", { type: "password", autocomplete: "off", id: "api-key", required: true });
  const form = h("form", { class: "card narrow", "aria-labelledby": "key-title" },
    h("h1", { id: "key-title" }, "API key needed"),
    h("p", {}, "This server requires an API key. The page keeps it for this browser session (its open tabs) and asks once."),
    field("API key", input),
    keyRejected ? h("p", { class: "error", role: "alert" }, "That key was not accepted. Try again.") : null,
    h("div", { class: "row end" }, h("button", { type: "submit" }, "Continue")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.value) return input.focus();
    setApiKey(input.value);
    keyTried = true;
    route();
  });
  view.replaceChildren(form);
  input.focus();
}

// One visit to a view. Every request it makes carries `signal`, and everything it runs in the
// background stops on it; it is aborted as soon as the page moves on, so an answer that comes
// late (for a view already left) is dropped, never drawn over the view now shown.
class Navigation {
  constructor() {
    this.controller = new AbortController();
    this.signal = this.controller.signal;
  }

  get current() {
    return this === current && !this.signal.aborted;
  }

  // Put the view on the page, if it is still the one to show.
  show(...nodes) {
    if (!this.current) throw new Abandoned();
    view.replaceChildren(...nodes);
  }

  leave() {
    this.controller.abort();
  }
}

async function route() {
  current?.leave();
  const nav = current = new Navigation();
  hideToast();
  const [, page, id] = location.hash.replace(/^#\/?/, "").match(/^([a-z]*)\/?(.*)$/) || [];
  if (config.auth_required && !hasApiKey() && !(await borrowApiKey())) {
    if (nav.current) askForKey();
    return;
  }
  try {
    if (page === "new") await renderWizard(nav);
    else if (page === "edit") await renderWizard(nav, id);
    else if (page === "a") await renderDetail(nav, id, config);
    else if (page === "events") await renderFeed(nav, id);
    else await renderList(nav);
    if (!nav.current) return;
    keyRejected = false;
    document.title = `${view.querySelector("h1")?.textContent ?? "Automations"} · temporal-automations`;
    // Move focus to the new view (for keyboards and screen readers) unless it placed it itself.
    if (!view.contains(document.activeElement)) view.focus();
  } catch (error) {
    if (!nav.current || error instanceof Abandoned) return; // a view already left
    if (error instanceof Unauthorized) {
      nav.leave(); // the key form replaces this view; what it started stops
      keyRejected = keyTried;
      askForKey();
      return;
    }
    view.replaceChildren(h("div", { class: "card", role: "alert" },
      h("h1", {}, "Something went wrong"), h("p", {}, error.message),
      h("p", {}, h("a", { href: "#/" }, "Back to all automations"))));
  }
}

async function start() {
  try {
    const response = await fetch("/api/ui-config");
    if (response.ok) config = await response.json();
  } catch {
    // the page still works without it: no Web UI link, and it asks for a key on a 401
  }
  window.addEventListener("hashchange", route);
  await route();
}

start();
