// Admin > Users > one user (#/users/{name}): facts, permissions (with "Set
// permission"), user limits, "Update this user" (tags, password) and delete.
// permissionsEditor() is shared with the vhost page.

import * as api from "../api.js";
import { h, fill, field, input, select, button, section, facts, act, confirmed, notify, showError,
  formValues } from "../dom.js";
import { Table } from "../table.js";
import { adminNav } from "../widgets.js";
import { tagsField, tagText, passwordFields, passwordPart } from "./users.js";
import { limitsEditor } from "./limits.js";

// The permissions of one user (mode "user") or one vhost (mode "vhost"): a table with
// Clear and a "Set permission" form choosing the other side (a vhost / a user).
export function permissionsEditor(mode, name) {
  const other = mode === "user" ? "vhost" : "user";
  const base = mode === "user" ? "/api/users/" : "/api/vhosts/";
  const link = (p) => (other === "vhost"
    ? h("a", { href: "#/vhosts/" + api.esc(p.vhost) }, p.vhost)
    : h("a", { href: "#/users/" + api.esc(p.user) }, p.user));
  const table = new Table({
    name: mode + "-permissions",
    label: "permissions",
    filter: false,
    columns: [
      { key: other, label: other === "vhost" ? "Virtual host" : "User", sort: other, render: link },
      { key: "configure", label: "Configure regexp", sort: "configure" },
      { key: "write", label: "Write regexp", sort: "write" },
      { key: "read", label: "Read regexp", sort: "read" },
      { key: "clear", label: "Clear", render: (p) => button("Clear", async () => {
        if (!(await confirmed(`Clear the permissions of ${p.user} on ${p.vhost}?`))) return;
        await act(() => api.del(`/api/permissions/${api.esc(p.vhost)}/${api.esc(p.user)}`),
          `Permissions of ${p.user} on ${p.vhost} cleared.`);
        await table.refresh();
      }, { class: "danger", "aria-label": `Clear the permissions of ${p.user} on ${p.vhost}` }) },
    ],
    load: () => api.get(base + api.esc(name) + "/permissions"),
    rowKey: (p) => p[other],
    sort: other,
    empty: mode === "user" ? "This user has no access to any virtual host." : "No user may use this virtual host.",
  });
  const choice = select(other, []);
  const fillChoice = async () => {
    const list = other === "vhost" ? await api.get("/api/vhosts", { columns: "name" }) : await api.get("/api/users");
    const was = choice.value;
    fill(choice, list.map((x) => h("option", { value: x.name, selected: x.name === was }, x.name)));
  };
  const re = (n) => input({ name: n, value: ".*", autocomplete: "off" });
  const form = h("form", { class: "form", id: "set-permission" },
    field(other === "vhost" ? "Virtual host" : "User", choice),
    field("Configure regexp", re("configure")), field("Write regexp", re("write")),
    field("Read regexp", re("read")),
    h("button", { type: "submit", class: "primary" }, "Set permission"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const user = mode === "user" ? name : v.user;
    const vhost = mode === "vhost" ? name : v.vhost;
    if (!user || !vhost) {
      showError(new Error("Please choose a " + (other === "vhost" ? "virtual host." : "user.")));
      return;
    }
    const done = await act(() => api.put(`/api/permissions/${api.esc(vhost)}/${api.esc(user)}`,
      { configure: v.configure, write: v.write, read: v.read }).then(() => true),
    `Permissions of ${user} on ${vhost} set.`);
    if (done) await table.refresh();
  });
  return {
    el: [table.el, h("h3", {}, "Set permission"), form],
    refresh: () => table.refresh(),
    init: () => Promise.all([table.refresh(), fillChoice().catch(showError)]),
  };
}

export async function render(root, params, ctx) {
  const name = params.name;
  let user = await api.get("/api/users/" + api.esc(name));
  const factsBox = h("div", {});
  const showFacts = () => fill(factsBox, facts([
    ["Tags", tagText(user.tags) || "(none)"],
    ["Can log in with password", user.password_hash ? "yes" : "no"],
  ]));
  showFacts();

  const perms = permissionsEditor("user", name);
  const limits = limitsEditor("user", name);

  // Update this user: tags, and a password.  An empty password box keeps the password
  // (the stored hash is sent back, so the PUT means the same on RabbitMQ, where a PUT
  // without password nor password_hash clears it); "No password" clears it.
  const form = h("form", { class: "form", id: "update-user" },
    passwordFields(Boolean(user.password_hash), "Leave empty to keep the current password."),
    tagsField(tagText(user.tags).replace(/, /g, ",")),
    h("button", { type: "submit", class: "primary" }, "Update user"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    let body;
    try {
      const keepHash = user.password_hash
        ? { password_hash: user.password_hash, hashing_algorithm: user.hashing_algorithm } : undefined;
      body = { ...passwordPart(v, { keepHash, clear: true }), tags: v.tags };
    } catch (e) {
      showError(e);
      return;
    }
    try {
      await api.put("/api/users/" + api.esc(name), body);
      // Our own new password: keep the session working with it.
      if (name === ctx.user.name && body.password !== undefined) api.setCredentials(name, body.password);
      notify(`User "${name}" updated.`, "ok");
      for (const el of form.querySelectorAll("input[type=password]")) el.value = "";
      user = await api.get("/api/users/" + api.esc(name));
      showFacts();
    } catch (e) {
      showError(e);
    }
  });

  const del = button("Delete this user", async () => {
    if (!(await confirmed(`Delete the user "${name}"?`))) return;
    const done = await act(() => api.del("/api/users/" + api.esc(name)).then(() => true), `User "${name}" deleted.`);
    if (done) ctx.go("#/users");
  }, { class: "danger", id: "delete-user" });

  root.append(adminNav(ctx, "users"), h("h1", {}, "User: ", h("b", {}, name)),
    section("Overview", factsBox),
    section("Permissions", perms.el),
    section("User limits", [limits.table.el, h("h3", {}, "Set / update a limit"), limits.form]),
    section("Update this user", form),
    section("Delete this user", del));
  await Promise.all([perms.init(), limits.refresh()]);
  return {
    refresh: async () => {
      await Promise.all([perms.refresh(), limits.refresh()]);
    },
  };
}
