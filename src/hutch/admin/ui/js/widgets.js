// Pieces several pages share: the admin sub-navigation, a vhost chooser, queue
// feature tags and an editor for arguments / headers (key, value, type rows).

import * as api from "./api.js";
import { h, fill, button, uid } from "./dom.js";

export function adminNav(ctx, active) {
  const items = [
    ["users", "Users", ["administrator"]],
    ["vhosts", "Virtual hosts", ["administrator"]],
    ["policies", "Policies", ["administrator", "policymaker"]],
    ["limits", "Limits", ["administrator"]],
    ["definitions", "Definitions", ["administrator"]],
  ];
  return h("nav", { class: "subnav", "aria-label": "Admin" },
    items.filter(([, , tags]) => ctx.has(tags)).map(([k, label]) =>
      h("a", { href: "#/" + k, "aria-current": k === active ? "page" : undefined }, label)));
}

// A <select> of the vhosts the user may see (filled asynchronously).
export function vhostSelect(value, name = "vhost") {
  const sel = h("select", { name }, h("option", { value: value || "/" }, value || "/"));
  api.get("/api/vhosts", { columns: "name" }).then((list) => {
    fill(sel, list.map((v) => h("option", { value: v.name, selected: v.name === (value || "/") }, v.name)));
  }).catch(() => {});
  return sel;
}

// RabbitMQ's "Features" column: D, AD, Excl and one tag per argument, with the full
// argument in the tooltip.
const FEATURE_NAMES = {
  "x-message-ttl": "TTL", "x-expires": "Exp", "x-max-length": "Lim", "x-max-length-bytes": "Lim B",
  "x-overflow": "Ovfl", "x-dead-letter-exchange": "DLX", "x-dead-letter-routing-key": "DLK",
  "x-max-priority": "Pri", "x-single-active-consumer": "SAC", "x-queue-type": null,
  "x-delivery-limit": "DLim", "x-queue-mode": "Mode", "x-queue-master-locator": "ML",
};

export function featureTags(q) {
  const tags = [];
  if (q.durable) tags.push(["D", "durable: true"]);
  if (q.auto_delete) tags.push(["AD", "auto-delete: true"]);
  if (q.exclusive) tags.push(["Excl", "exclusive: true"]);
  for (const [k, v] of Object.entries(q.arguments || {})) {
    const short = k in FEATURE_NAMES ? FEATURE_NAMES[k] : "Args";
    if (short) tags.push([short, k + ": " + JSON.stringify(v)]);
  }
  if (q.policy) tags.push(["Pol", "policy: " + q.policy]);
  return h("span", { class: "features" },
    tags.map(([t, title]) => h("abbr", { class: "tag", title }, t)));
}

// Rows of key = value (typed), for arguments and headers.  value() -> an object.
export class ArgsEditor {
  constructor(label, { types = ["string", "number", "boolean"] } = {}) {
    this.types = types;
    this.rows = h("div", { class: "args-rows" });
    this.el = h("fieldset", { class: "args" }, h("legend", {}, label), this.rows,
      button("Add " + label.toLowerCase().replace(/s$/, ""), () => this.addRow(), { class: "add-row" }));
    this.addRow();
  }

  addRow(key = "", value = "", type = "string") {
    const k = h("input", { type: "text", name: "arg-key", value: key, "aria-label": "Key" });
    const v = h("input", { type: "text", name: "arg-value", value, "aria-label": "Value" });
    const t = h("select", { name: "arg-type", "aria-label": "Type" },
      this.types.map((x) => h("option", { value: x, selected: x === type }, x)));
    const row = h("div", { class: "arg-row" }, k, v, t,
      button("Remove", () => row.remove(), { "aria-label": "Remove this row" }));
    this.rows.appendChild(row);
    return row;
  }

  // Throws an Error in plain words for a value that does not fit its type.
  value() {
    const out = {};
    for (const row of this.rows.querySelectorAll(".arg-row")) {
      const k = row.querySelector("[name=arg-key]").value.trim();
      const raw = row.querySelector("[name=arg-value]").value;
      const t = row.querySelector("[name=arg-type]").value;
      if (!k) continue;
      if (t === "number") {
        const n = Number(raw);
        if (raw.trim() === "" || Number.isNaN(n)) throw new Error(`"${k}" must be a number, not "${raw}"`);
        out[k] = n;
      } else if (t === "boolean") {
        if (!["true", "false"].includes(raw.trim())) throw new Error(`"${k}" must be true or false`);
        out[k] = raw.trim() === "true";
      } else if (t === "list") {
        out[k] = raw.split(",").map((s) => s.trim()).filter(Boolean);
      } else {
        out[k] = raw;
      }
    }
    return out;
  }

  clear() {
    this.rows.replaceChildren();
    this.addRow();
  }
}

export { uid };
