// Building the page without innerHTML: every string from the broker (queue names,
// message bodies, client properties) goes into the DOM as a text node, so a queue
// named <img src=x onerror=alert(1)> is shown as those characters, never parsed.

// h("a", {href: "#/queues", class: "x", onclick: fn}, "text", child, [more])
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "class") {
      el.className = v;
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k === "value" && (tag === "input" || tag === "textarea" || tag === "select")) {
      el.value = v;
    } else if (k === "checked" || k === "selected" || k === "disabled") {
      el[k] = Boolean(v);
    } else if (k === "href") {
      // Only the UI's own links: never a broker-supplied scheme such as javascript:.
      el.setAttribute("href", String(v).startsWith("#") ? v : "#");
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// Replace an element's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let nextId = 0;
export function uid(prefix = "f") {
  nextId += 1;
  return prefix + "-" + nextId;
}

// A labelled form field: the label is tied to the control for screen readers.
export function field(label, control, help) {
  if (!control.id) control.id = uid();
  const parts = [h("label", { for: control.id }, label), control];
  if (help) {
    const hid = uid("help");
    control.setAttribute("aria-describedby", hid);
    parts.push(h("small", { id: hid, class: "help" }, help));
  }
  return h("div", { class: "field" }, parts);
}

export function input(props) {
  return h("input", { type: "text", ...props });
}

export function select(name, options, value) {
  // options: [[value, label], ...] or ["value", ...]
  return h("select", { name },
    options.map((o) => {
      const [v, l] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: v, selected: v === value }, l);
    }));
}

export function button(label, onclick, props = {}) {
  return h("button", { type: "button", onclick, ...props }, label);
}

// A section with a heading, as RabbitMQ's collapsible sections; open by default.
export function section(title, body, { open = true, id } = {}) {
  return h("details", { class: "section", open, id },
    h("summary", {}, h("h2", {}, title)), h("div", { class: "section-body" }, body));
}

// Key/value facts (a definition list).
export function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter((p) => p).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// --- messages to the user -------------------------------------------------------------------
// One live region for all of them, so screen readers announce errors and results.
export function notify(text, kind = "info") {
  const box = document.getElementById("notices");
  if (!box) return;
  const item = h("div", { class: "notice " + kind, role: kind === "error" ? "alert" : "status" },
    h("span", {}, text),
    h("button", { type: "button", class: "close", "aria-label": "Dismiss",
      onclick: () => item.remove() }, "×"));
  box.appendChild(item);
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
}

export function showError(e) {
  notify(e && e.message ? e.message : String(e), "error");
}

// A confirmation the keyboard can answer (window.confirm is modal and untestable).
export async function confirmed(text) {
  return window.confirm(text);
}

// Run an action from a button or form: errors in plain words, success as a notice.
export async function act(fn, done) {
  try {
    const r = await fn();
    if (done) notify(done, "ok");
    return r;
  } catch (e) {
    showError(e);
    return undefined;
  }
}

// Form values by name, as an object (checkboxes: true/false).
export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === "checkbox" ? el.checked : el.value;
  }
  return out;
}

// Rebuild part of a page without losing the keyboard focus inside it: the focused control
// is found again after the rebuild by its row (data-key), its tag, name, class and text.
function focusSignature(el, container) {
  if (!el || el === document.body || !container.contains(el)) return null;
  const row = el.closest("[data-key]");
  return {
    row: row ? row.dataset.key : null, tag: el.tagName, name: el.getAttribute("name"),
    cls: el.className, text: el.tagName === "BUTTON" || el.tagName === "A" ? el.textContent : null,
  };
}

export function keepFocus(container, rebuild) {
  const sig = focusSignature(document.activeElement, container);
  rebuild();
  if (!sig) return;
  const scope = sig.row === null ? container
    : [...container.querySelectorAll("[data-key]")].find((r) => r.dataset.key === sig.row);
  if (!scope) return;
  const match = [...scope.querySelectorAll(sig.tag)].find((el) =>
    el.getAttribute("name") === sig.name && el.className === sig.cls
    && (sig.text === null || el.textContent === sig.text));
  if (match) match.focus();
}
