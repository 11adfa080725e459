// Admin > Policies (#/policies): user policies and (for administrators) operator
// policies, each a table with Clear and an "Add / update" form: vhost, name, pattern,
// apply-to, priority and the definition (typed key/value rows with RabbitMQ's quick
// picks).  Policymakers see this page only.

import * as api from "../api.js";
import { h, field, input, select, button, section, act, confirmed, notify, showError,
  formValues } from "../dom.js";
import { Table } from "../table.js";
import { adminNav, vhostSelect, ArgsEditor } from "../widgets.js";
import { kv } from "../format.js";

const APPLY_TO = [["all", "Exchanges and queues"], ["exchanges", "Exchanges"], ["queues", "Queues [All types]"],
  ["classic_queues", "Classic Queues"], ["quorum_queues", "Quorum Queues"], ["streams", "Streams"]];

// RabbitMQ's quick picks: [group, [[label, key, type]...]].
const PICKS = [
  ["Queues [All types]", [["Max length", "max-length", "number"], ["Max length bytes", "max-length-bytes", "number"],
    ["Overflow behaviour", "overflow", "string"], ["Auto expire", "expires", "number"],
    ["Dead letter exchange", "dead-letter-exchange", "string"],
    ["Dead letter routing key", "dead-letter-routing-key", "string"], ["Message TTL", "message-ttl", "number"],
    ["Consumer timeout", "consumer-timeout", "number"], ["Leader locator", "queue-leader-locator", "string"]]],
  ["Classic queues", [["Version", "queue-version", "number"]]],
  ["Quorum queues", [["Delivery limit", "delivery-limit", "number"],
    ["Dead letter strategy", "dead-letter-strategy", "string"],
    ["Target group size", "target-group-size", "number"]]],
  ["Streams", [["Max age", "max-age", "string"], ["Max segment size in bytes", "stream-max-segment-size-bytes", "number"]]],
  ["Exchanges", [["Alternate exchange", "alternate-exchange", "string"]]],
];

const OPERATOR_PICKS = [
  ["Queues", [["Auto expire", "expires", "number"], ["Max length", "max-length", "number"],
    ["Max length bytes", "max-length-bytes", "number"], ["Message TTL", "message-ttl", "number"],
    ["Delivery limit", "delivery-limit", "number"], ["Target group size", "target-group-size", "number"]]],
];

function definitionText(def) {
  return h("pre", { class: "definition" }, kv(def));
}

// The table of one kind of policy ("policies" or "operator-policies").
function policyTable(base, label, mayChange, onEdit) {
  const table = new Table({
    name: base,
    label,
    columns: [
      { key: "vhost", label: "Virtual host", sort: "vhost" },
      { key: "name", label: "Name", sort: "name",
        render: (p) => (mayChange
          ? [p.name, " ", button("Edit", () => onEdit(p),
            { class: "edit", "aria-label": `Edit the policy ${p.name} on ${p.vhost}` })]
          : p.name) },
      { key: "pattern", label: "Pattern", sort: "pattern" },
      { key: "apply-to", label: "Apply to", sort: "apply-to" },
      { key: "definition", label: "Definition", render: (p) => definitionText(p.definition) },
      { key: "priority", label: "Priority", sort: "priority", numeric: true },
      mayChange ? { key: "clear", label: "Clear", render: (p) => button("Clear", async () => {
        if (!(await confirmed(`Clear the policy "${p.name}" on ${p.vhost}?`))) return;
        await act(() => api.del(`/api/${base}/${api.esc(p.vhost)}/${api.esc(p.name)}`),
          `Policy "${p.name}" cleared.`);
        await table.refresh();
      }, { class: "danger", "aria-label": `Clear the policy ${p.name} on ${p.vhost}` }) } : null,
    ].filter(Boolean),
    load: () => api.get("/api/" + base),
    rowKey: (p) => p.vhost + "\u0000" + p.name,
    sort: "name",
    empty: "... no policies ...",
  });
  return table;
}

// Select a value, adding it as an option when the list lacks it.
function choose(sel, value) {
  if (![...sel.options].some((o) => o.value === value)) sel.append(h("option", { value }, value));
  sel.value = value;
}

// A definition value as an editor row: [text, type].
function asRow(v) {
  if (typeof v === "number") return [String(v), "number"];
  if (typeof v === "boolean") return [String(v), "boolean"];
  if (typeof v === "string") return [v, "string"];
  return [JSON.stringify(v), "string"];
}

// "Add / update a policy" (or operator policy).  form.edit(policy) fills it with an
// existing one (RabbitMQ's update is the same PUT).
function policyForm(base, id, picks, tables) {
  const def = new ArgsEditor("Definition");
  const quick = h("div", { class: "quick-picks" }, picks.map(([group, keys]) =>
    h("p", {}, h("span", { class: "muted" }, group + ": "),
      keys.map(([label, key, type]) => button(label, () => {
        // Use the empty last row if there is one, as RabbitMQ's links do.
        const last = [...def.rows.querySelectorAll(".arg-row")].pop();
        let row = last;
        if (!last || last.querySelector("[name=arg-key]").value.trim() !== "") row = def.addRow(key, "", type);
        else {
          last.querySelector("[name=arg-key]").value = key;
          last.querySelector("[name=arg-type]").value = type;
        }
        row.querySelector("[name=arg-value]").focus();
      }, { class: "quick-pick", title: key, "aria-label": `Add ${key} to the definition`, dataset: { key } })))));
  const form = h("form", { class: "form policy-form", id },
    field("Virtual host", vhostSelect("/")),
    field("Name", input({ name: "name", required: true, autocomplete: "off" })),
    field("Pattern", input({ name: "pattern", required: true, autocomplete: "off" }),
      "A regular expression matched against queue / exchange names, e.g. ^dlx\\."),
    field("Apply to", select("apply-to", base === "policies" ? APPLY_TO : [["queues", "Queues"]],
      base === "policies" ? "all" : "queues")),
    field("Priority", input({ name: "priority", type: "number", step: "1", autocomplete: "off" }), "0 when empty"),
    h("div", { class: "definition-editor" }, def.el, quick),
    h("button", { type: "submit", class: "primary" }, base === "policies" ? "Add / update policy" : "Add / update operator policy"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    let definition;
    try {
      if (!v.name.trim()) throw new Error("Please give the policy a name.");
      if (!v.pattern) throw new Error("Please give a pattern.");
      definition = def.value();
      if (Object.keys(definition).length === 0) throw new Error("Please give the definition at least one key.");
    } catch (e) {
      showError(e);
      return;
    }
    const body = { pattern: v.pattern, "apply-to": v["apply-to"], definition };
    if (v.priority !== "") body.priority = Number(v.priority);
    try {
      await api.put(`/api/${base}/${api.esc(v.vhost)}/${api.esc(v.name)}`, body);
      notify(`Policy "${v.name}" set on ${v.vhost}.`, "ok");
      await tables.refresh();
    } catch (e) {
      showError(e);
    }
  });
  form.edit = (p) => {
    choose(form.querySelector("[name=vhost]"), p.vhost);
    form.querySelector("[name=name]").value = p.name;
    form.querySelector("[name=pattern]").value = p.pattern;
    choose(form.querySelector("[name=apply-to]"), p["apply-to"]);
    form.querySelector("[name=priority]").value = String(p.priority ?? "");
    def.rows.replaceChildren();
    for (const [k, v] of Object.entries(p.definition || {})) def.addRow(k, ...asRow(v));
    def.addRow();
    form.closest("details").open = true;
    form.scrollIntoView({ block: "start" });
    form.querySelector("[name=pattern]").focus();
  };
  return form;
}

export async function render(root, params, ctx) {
  const admin = ctx.has(["administrator"]);
  const mayChange = ctx.has(["administrator", "policymaker"]);
  let userForm = null;
  let opForm = null;
  const user = policyTable("policies", "policies", mayChange, (p) => userForm.edit(p));
  const parts = [section("User policies", user.el)];
  if (mayChange) {
    userForm = policyForm("policies", "add-policy", PICKS, user);
    parts.push(section("Add / update a policy", userForm));
  }
  let op = null;
  if (admin) {
    op = policyTable("operator-policies", "operator policies", true, (p) => opForm.edit(p));
    opForm = policyForm("operator-policies", "add-operator-policy", OPERATOR_PICKS, op);
    parts.push(section("Operator policies", op.el),
      section("Add / update an operator policy", opForm, { open: false }));
  }
  root.append(adminNav(ctx, "policies"), h("h1", {}, "Policies"), ...parts);
  const refresh = () => Promise.all([user.refresh(), op && op.refresh()]);
  await refresh();
  return { refresh };
}
