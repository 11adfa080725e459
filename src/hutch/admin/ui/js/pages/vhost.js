// Admin > Virtual hosts > one vhost (#/vhosts/{name}): facts, permissions (with "Set
// permission" for a user), the vhost's limits and delete.

import * as api from "../api.js";
import { h, fill, button, section, facts, act, confirmed } from "../dom.js";
import { adminNav } from "../widgets.js";
import { num, rateOf, bool } from "../format.js";
import { permissionsEditor } from "./user.js";
import { limitsEditor } from "./limits.js";
import { vhostState } from "./vhosts.js";

export async function render(root, params, ctx) {
  const name = params.name;
  const factsBox = h("div", {});
  const load = async () => {
    const v = await api.get("/api/vhosts/" + api.esc(name));
    fill(factsBox, facts([
      ["Description", v.description || (v.metadata && v.metadata.description) || ""],
      v.tags && v.tags.length ? ["Tags", v.tags.join(", ")] : null,
      ["State", vhostState(v)],
      ["Tracing", bool(v.tracing)],
      ["Messages ready", num(v.messages_ready)],
      ["Messages unacked", num(v.messages_unacknowledged)],
      ["Messages total", num(v.messages)],
      ["Publish rate", rateOf(v.message_stats, "publish")],
      ["Deliver / get rate", rateOf(v.message_stats, "deliver_get")],
    ]));
  };
  await load();
  const perms = permissionsEditor("vhost", name);
  const limits = limitsEditor("vhost", name);
  const del = button("Delete this virtual host", async () => {
    if (!(await confirmed(`Delete the virtual host "${name}" and everything in it?`))) return;
    const done = await act(() => api.del("/api/vhosts/" + api.esc(name)).then(() => true),
      `Virtual host "${name}" deleted.`);
    if (done) ctx.go("#/vhosts");
  }, { class: "danger", id: "delete-vhost" });
  root.append(adminNav(ctx, "vhosts"), h("h1", {}, "Virtual host: ", h("b", {}, name)),
    section("Overview", factsBox),
    section("Permissions", perms.el),
    section("Virtual host limits", [limits.table.el, h("h3", {}, "Set / update a limit"), limits.form]),
    section("Delete this virtual host", del));
  await Promise.all([perms.init(), limits.refresh()]);
  return { refresh: () => Promise.all([load(), perms.refresh(), limits.refresh()]) };
}
