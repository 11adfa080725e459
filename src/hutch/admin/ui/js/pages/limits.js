// Admin > Limits (#/limits): vhost limits (max-connections, max-queues) and user
// limits (max-connections, max-channels), each a table with Clear and a "Set / update"
// form, as RabbitMQ's limits page.  limitsEditor() is also used by the user and vhost
// pages for one user's or one vhost's limits.

import * as api from "../api.js";
import { h, fill, field, input, select, button, section, act, confirmed, showError } from "../dom.js";
import { Table } from "../table.js";
import { adminNav } from "../widgets.js";

export const KINDS = {
  vhost: { path: "/api/vhost-limits", key: "vhost", label: "Virtual host",
    names: ["max-connections", "max-queues"] },
  user: { path: "/api/user-limits", key: "user", label: "User",
    names: ["max-connections", "max-channels"] },
};

// [{vhost|user, value: {name: n}}] -> one row a limit.
function rows(kind, list) {
  const k = KINDS[kind].key;
  return list.flatMap((e) => Object.entries(e.value || {}).map(([name, value]) =>
    ({ owner: e[k], limit: name, value, name: e[k] + " " + name })));
}

function parseValue(raw) {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n)) throw new Error(`The value must be a whole number, not "${raw}".`);
  return n;
}

// The table and the form.  owner: one vhost / user name (its page), or undefined for
// all of them (the limits page, with an owner chooser).
export function limitsEditor(kind, owner, { ownerChoices } = {}) {
  const K = KINDS[kind];
  const table = new Table({
    name: kind + "-limits",
    label: kind + " limits",
    filter: !owner,
    columns: [
      owner ? null : { key: "owner", label: K.label, sort: "owner" },
      { key: "limit", label: "Limit", sort: "limit" },
      { key: "value", label: "Value", sort: "value", numeric: true },
      { key: "clear", label: "Clear", render: (r) => button("Clear", async () => {
        if (!(await confirmed(`Clear ${r.limit} of ${r.owner}?`))) return;
        await act(() => api.del(`${K.path}/${api.esc(r.owner)}/${api.esc(r.limit)}`),
          `${r.limit} of ${r.owner} cleared.`);
        await table.refresh();
      }, { class: "danger", "aria-label": `Clear ${r.limit} of ${r.owner}` }) },
    ].filter(Boolean),
    load: async () => rows(kind, await api.get(owner ? `${K.path}/${api.esc(owner)}` : K.path)),
    filterKey: (r) => r.owner,
    rowKey: (r) => r.owner + "\u0000" + r.limit,
    sort: owner ? "limit" : "owner",
    empty: "No limits",
  });
  const who = owner ? null : (ownerChoices || select(K.key, []));
  const limit = select("limit", K.names, K.names[0]);
  const value = input({ name: "value", type: "number", step: "1", required: true });
  const form = h("form", { class: "form", novalidate: true, dataset: { limits: kind } },
    who ? field(K.label, who) : null,
    field("Limit", limit),
    field("Value", value, "A negative value means no limit; 0 refuses all."),
    h("button", { type: "submit", class: "primary" }, "Set limit"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const target = owner ?? who.value;
    let n;
    try {
      n = parseValue(value.value);
    } catch (e) {
      showError(e);
      return;
    }
    const ok = await act(() => api.put(`${K.path}/${api.esc(target)}/${api.esc(limit.value)}`, { value: n })
      .then(() => true), `${limit.value} of ${target} set to ${n}.`);
    if (ok) {
      value.value = "";
      await table.refresh();
    }
  });
  return { table, form, refresh: () => table.refresh() };
}

export async function render(root, params, ctx) {
  const vhostChoice = select("vhost", []);
  const userChoice = select("user", []);
  const vl = limitsEditor("vhost", undefined, { ownerChoices: vhostChoice });
  const ul = limitsEditor("user", undefined, { ownerChoices: userChoice });
  const fillChoices = async () => {
    const [vhosts, users] = await Promise.all([api.get("/api/vhosts", { columns: "name" }),
      api.get("/api/users")]);
    // Keep what the user chose across refreshes.
    const keep = (sel, names) => {
      const was = sel.value;
      fill(sel, names.map((n) => h("option", { value: n, selected: n === was }, n)));
    };
    keep(vhostChoice, vhosts.map((v) => v.name));
    keep(userChoice, users.map((u) => u.name));
  };
  root.append(adminNav(ctx, "limits"), h("h1", {}, "Limits"),
    section("Virtual host limits", [vl.table.el, h("h3", {}, "Set / update a virtual host limit"), vl.form]),
    section("User limits", [ul.table.el, h("h3", {}, "Set / update a user limit"), ul.form]));
  await Promise.all([vl.refresh(), ul.refresh(), fillChoices().catch(showError)]);
  return { refresh: () => Promise.all([vl.refresh(), ul.refresh()]) };
}
