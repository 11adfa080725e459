// Admin > Users (#/users): every user with their tags, the vhosts they may use and
// whether they can log in with a password; "Add a user" as RabbitMQ's form
// (username, password + confirmation or no password, tags with quick picks).

import * as api from "../api.js";
import { h, field, input, select, button, section, notify, showError, formValues } from "../dom.js";
import { Table } from "../table.js";
import { adminNav } from "../widgets.js";

// RabbitMQ's quick picks: a click replaces the tags with that one.
const TAG_PICKS = [["Admin", "administrator"], ["Monitoring", "monitoring"],
  ["Policymaker", "policymaker"], ["Management", "management"],
  ["Impersonator", "impersonator"], ["None", ""]];

// A "Tags" field with the quick-pick buttons under it.
export function tagsField(value = "") {
  const box = input({ name: "tags", value, autocomplete: "off" });
  const picks = h("span", { class: "tag-picks" }, "Set: ",
    TAG_PICKS.map(([label, tag]) => button(label, () => { box.value = tag; box.focus(); },
      { class: "tag-pick", "aria-label": "Set tags to " + (tag || "none"), dataset: { tag } })));
  const f = field("Tags", box, "Comma-separated, e.g. management,policymaker");
  f.appendChild(picks);
  return f;
}

export function tagText(tags) {
  return Array.isArray(tags) ? tags.join(", ") : String(tags || "");
}

// The password part of a PUT /api/users body, or an Error in words.  "No password":
// nothing for a new user (RabbitMQ's passwordless user), an empty password_hash for an
// existing one (clear: true); an empty box keeps the existing hash (keepHash).
export function passwordPart(values, { keepHash, clear } = {}) {
  if (values["has-password"] === "no-password") return clear ? { password_hash: "" } : {};
  if (values.password === "" && keepHash !== undefined) return keepHash;
  if (values.password === "") throw new Error("Please give a password (or choose \"No password\").");
  if (values.password !== values.password_confirm) throw new Error("The passwords do not match.");
  return { password: values.password };
}

// The password / no password chooser with the two password boxes.
export function passwordFields(hasPassword = true, help) {
  const kind = select("has-password", [["password", "Password"], ["no-password", "No password"]],
    hasPassword ? "password" : "no-password");
  const pass = input({ name: "password", type: "password", autocomplete: "new-password" });
  const again = input({ name: "password_confirm", type: "password", autocomplete: "new-password" });
  const boxes = h("div", { class: "form password-boxes" },
    field("Password", pass, help), field("Password (confirm)", again));
  const none = h("p", { class: "help" }, "The user cannot log in with a password.");
  const show = () => {
    boxes.hidden = kind.value !== "password";
    none.hidden = kind.value === "password";
  };
  kind.addEventListener("change", show);
  show();
  return h("div", { class: "form" }, field("Password or not", kind), boxes, none);
}

export async function render(root, params, ctx) {
  let perms = [];
  const table = new Table({
    name: "users",
    label: "users",
    columns: [
      { key: "name", label: "Name", sort: "name",
        render: (u) => h("a", { href: "#/users/" + api.esc(u.name) }, u.name) },
      { key: "tags", label: "Tags", sort: "tags", render: (u) => tagText(u.tags) },
      { key: "vhosts", label: "Can access virtual hosts",
        render: (u) => {
          const mine = perms.filter((p) => p.user === u.name).map((p) => p.vhost);
          return mine.length ? mine.join(", ") : h("span", { class: "muted" }, "No access");
        } },
      { key: "password_hash", label: "Has password", render: (u) => (u.password_hash ? "yes" : "no") },
    ],
    load: async () => {
      const [users, p] = await Promise.all([api.get("/api/users"), api.get("/api/permissions")]);
      perms = p;
      return users;
    },
    sort: "name",
    empty: "No users",
  });

  const name = input({ name: "username", required: true, autocomplete: "off" });
  const form = h("form", { class: "form", id: "add-user" },
    field("Username", name), passwordFields(true), tagsField(""),
    h("button", { type: "submit", class: "primary" }, "Add user"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    if (!v.username.trim()) {
      showError(new Error("Please give a username."));
      return;
    }
    let body;
    try {
      body = { ...passwordPart(v), tags: v.tags };
    } catch (e) {
      showError(e);
      return;
    }
    try {
      await api.put("/api/users/" + api.esc(v.username), body);
      notify(`User "${v.username}" added.`, "ok");
      form.reset();
      form.querySelector("[name=has-password]").dispatchEvent(new Event("change"));
      await table.refresh();
    } catch (e) {
      showError(e);
    }
  });

  root.append(adminNav(ctx, "users"), h("h1", {}, "Users"),
    section("All users", table.el), section("Add a user", form));
  await table.refresh();
  return { refresh: () => table.refresh() };
}
