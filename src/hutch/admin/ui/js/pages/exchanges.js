// The exchanges list (#/exchanges), as RabbitMQ's: name, type, features, message rates
// in and out, and the "Add a new exchange" form.

import * as api from "../api.js";
import { h, field, input, select, button, section, act, notify } from "../dom.js";
import { Table } from "../table.js";
import { rateOf } from "../format.js";
import { vhostSelect, ArgsEditor } from "../widgets.js";

const BASE_TYPES = ["direct", "fanout", "headers", "topic"];

// The default exchange has the empty name; RabbitMQ's UI shows it as "(AMQP default)"
// and addresses it as "amq.default" in URLs.
export function exchangeLabel(name) {
  return name === "" ? "(AMQP default)" : name;
}

export function exchangeUrlName(name) {
  return name === "" ? "amq.default" : name;
}

export function exchangeHref(vhost, name) {
  return "#/exchanges/" + api.esc(vhost) + "/" + api.esc(exchangeUrlName(name));
}

// RabbitMQ's "Features" column for an exchange: D, AD, I and one tag per argument.
const ARG_TAGS = { "alternate-exchange": "AE", "x-delayed-type": "Delayed" };

export function exchangeFeatures(x) {
  const tags = [];
  if (x.durable) tags.push(["D", "durable: true"]);
  if (x.auto_delete) tags.push(["AD", "auto-delete: true"]);
  if (x.internal) tags.push(["I", "internal: true"]);
  for (const [k, v] of Object.entries(x.arguments || {})) {
    tags.push([ARG_TAGS[k] || "Args", k + ": " + JSON.stringify(v)]);
  }
  if (x.policy) tags.push(["Pol", "policy: " + x.policy]);
  return h("span", { class: "features" },
    tags.map(([t, title]) => h("abbr", { class: "tag", title }, t)));
}

export async function render(root, params, ctx) {
  const table = new Table({
    name: "exchanges",
    label: "exchanges",
    paged: true,
    sort: "name",
    rowKey: (x) => x.vhost + "/" + x.name,
    empty: "No exchanges",
    load: (q) => api.get("/api/exchanges", q),
    columns: [
      { key: "vhost", label: "Virtual host", sort: "vhost" },
      {
        key: "name", label: "Name", sort: "name",
        render: (x) => h("a", { href: exchangeHref(x.vhost, x.name), class: "exchange-link" },
          exchangeLabel(x.name)),
      },
      { key: "type", label: "Type", sort: "type" },
      { key: "features", label: "Features", render: exchangeFeatures },
      {
        key: "in", label: "Message rate in", numeric: true, sort: "message_stats.publish_in_details.rate",
        render: (x) => rateOf(x.message_stats, "publish_in"),
      },
      {
        key: "out", label: "Message rate out", numeric: true, sort: "message_stats.publish_out_details.rate",
        render: (x) => rateOf(x.message_stats, "publish_out"),
      },
    ],
  });

  root.append(
    h("h1", {}, "Exchanges"),
    section("All exchanges", table.el),
    section("Add a new exchange", addForm(table), { open: true, id: "add-exchange" }),
  );
  await table.refresh();
  return { refresh: () => table.refresh() };
}

function addForm(table) {
  const name = input({ name: "name", required: true, autocomplete: "off" });
  const type = select("type", BASE_TYPES, "direct");
  // Any other type the broker offers (x-delayed-message ...), from the overview.
  api.get("/api/overview").then((o) => {
    for (const t of o.exchange_types || []) {
      if (!BASE_TYPES.includes(t.name)) type.append(h("option", { value: t.name, title: t.description }, t.name));
    }
  }).catch(() => {});
  const durable = select("durable", [["true", "Durable"], ["false", "Transient"]], "true");
  const autoDelete = select("auto_delete", [["false", "No"], ["true", "Yes"]], "false");
  const internal = select("internal", [["false", "No"], ["true", "Yes"]], "false");
  const args = new ArgsEditor("Arguments");
  const vhost = vhostSelect("/");
  const form = h("form", { class: "form", id: "add-exchange-form" },
    field("Virtual host", vhost),
    field("Name", name),
    field("Type", type),
    field("Durability", durable),
    field("Auto delete", autoDelete, "Deleted when its last binding is removed"),
    field("Internal", internal, "Clients cannot publish to it, only other exchanges"),
    args.el,
    h("div", { class: "field" },
      button("Add exchange", null, { type: "submit", class: "primary" })),
    button("Alternate exchange", () => args.addRow("alternate-exchange", "", "string"),
      { class: "arg-shortcut", title: "Add the alternate-exchange argument" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const n = name.value;
    if (!n) {
      notify("An exchange needs a name.", "error");
      name.focus();
      return;
    }
    const ok = await act(async () => {
      await api.put("/api/exchanges/" + api.esc(vhost.value) + "/" + api.esc(n), {
        type: type.value,
        durable: durable.value === "true",
        auto_delete: autoDelete.value === "true",
        internal: internal.value === "true",
        arguments: args.value(),
      });
      return true;
    }, `Exchange "${n}" added.`);
    if (ok) {
      name.value = "";
      args.clear();
      await table.refresh();
    }
  });
  return form;
}
