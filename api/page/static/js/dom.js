// Small DOM helpers: build elements without innerHTML, so user text is never markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "value") element.value = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

let fieldCounter = 0;

// A labelled control with its hint and room for its error message; screen readers read both
// (aria-describedby). Errors go into `#<id>-error`.
export function field(label, control, hint) {
  const id = control.id || `field-${++fieldCounter}`;
  control.id = id;
  const error = h("p", { class: "error", id: `${id}-error`, hidden: true });
  const hintBox = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  control.setAttribute("aria-describedby", hint ? `${id}-error ${id}-hint` : `${id}-error`);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintBox, error);
}

// Keep an object's property in step with a form control.
export function bind(control, target, key, read = (element) => element.value) {
  const update = () => { target[key] = read(control); };
  control.addEventListener("input", update);
  control.addEventListener("change", update);
  return control;
}

export function options(pairs, selected) {
  return pairs.map(([value, label]) => h("option", { value, selected: value === selected }, label ?? value));
}

export function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove("show"), 2500);
}

export function hideToast() {
  clearTimeout(toast.timer);
  document.getElementById("toast").classList.remove("show");
}

// The clipboard API exists only in secure contexts (https, localhost); elsewhere fall back to
// the older copy command on a selected, off-screen text area.
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = h("textarea", { readonly: true, class: "offscreen", "aria-hidden": "true" }, text);
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) throw new Error("the browser refused to copy");
}
