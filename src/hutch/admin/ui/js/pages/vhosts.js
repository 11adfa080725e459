// Admin > Virtual hosts (#/vhosts): the paged list (name, users, state, messages,
// rates) and "Add a new virtual host".

import * as api from "../api.js";
import { h, field, input, section, notify, showError, formValues } from "../dom.js";
import { Table } from "../table.js";
import { adminNav } from "../widgets.js";
import { num, rateOf } from "../format.js";

export function vhostState(v) {
  const states = Object.values(v.cluster_state || {});
  if (states.length === 0) return "";
  return states.every((s) => s === states[0]) ? states[0] : states.join(", ");
}

export async function render(root, params, ctx) {
  let userCount = {};
  const table = new Table({
    name: "vhosts",
    label: "virtual hosts",
    paged: true,
    columns: [
      { key: "name", label: "Name", sort: "name",
        render: (v) => h("a", { href: "#/vhosts/" + api.esc(v.name) }, v.name) },
      { key: "users", label: "Users", title: "Users with permissions here",
        numeric: true, render: (v) => num(userCount[v.name] || 0) },
      { key: "tags", label: "Tags", render: (v) => (v.tags || []).map((t) => h("span", { class: "tag" }, t)) },
      { key: "state", label: "State", render: vhostState },
      { key: "messages_ready", label: "Ready", sort: "messages_ready", numeric: true },
      { key: "messages_unacknowledged", label: "Unacked", sort: "messages_unacknowledged", numeric: true },
      { key: "messages", label: "Total", sort: "messages", numeric: true },
      { key: "publish", label: "Publish", numeric: true, title: "Messages published per second",
        render: (v) => rateOf(v.message_stats, "publish") },
      { key: "deliver", label: "Deliver / get", numeric: true, title: "Messages delivered per second",
        render: (v) => rateOf(v.message_stats, "deliver_get") },
    ],
    load: async (q) => {
      const [env, perms] = await Promise.all([api.get("/api/vhosts", q), api.get("/api/permissions")]);
      userCount = {};
      for (const p of perms) userCount[p.vhost] = (userCount[p.vhost] || 0) + 1;
      return env;
    },
    empty: "No virtual hosts",
  });

  // RabbitMQ's form: name, description, tags (Hutch keeps both; its default queue type
  // is always classic, so the form does not offer one).
  const name = input({ name: "name", required: true, autocomplete: "off" });
  const form = h("form", { class: "form", id: "add-vhost" },
    field("Name", name),
    field("Description", input({ name: "description", autocomplete: "off" })),
    field("Tags", input({ name: "tags", autocomplete: "off" }), "Comma-separated"),
    h("button", { type: "submit", class: "primary" }, "Add virtual host"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    if (!v.name.trim()) {
      showError(new Error("Please give the virtual host a name."));
      return;
    }
    const body = { description: v.description, tags: v.tags };
    try {
      await api.put("/api/vhosts/" + api.esc(v.name), body);
      notify(`Virtual host "${v.name}" added.`, "ok");
      form.reset();
      await table.refresh();
    } catch (e) {
      showError(e);
    }
  });

  root.append(adminNav(ctx, "vhosts"), h("h1", {}, "Virtual hosts"),
    section("All virtual hosts", table.el), section("Add a new virtual host", form));
  await table.refresh();
  return { refresh: () => table.refresh() };
}
