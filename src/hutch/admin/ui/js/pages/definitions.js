// Admin > Definitions (#/definitions): export the broker's (or one vhost's)
// definitions to a file, and import a file.
//
// The export is fetched with the session's Authorization header (api.js) and saved
// from a Blob through an <a download> click: no credentials in a URL (RabbitMQ's UI
// puts them in ?auth=, which ends up in logs and history).

import * as api from "../api.js";
import { h, fill, field, input, button, section, notify, showError } from "../dom.js";
import { adminNav } from "../widgets.js";

// RabbitMQ's file name: the node name with "@" as "_", then the date (2026-12-2).
export function downloadName(node, now = new Date()) {
  return String(node || "hutch").replace("@", "_") + "_" + now.getFullYear() + "-" +
    (now.getMonth() + 1) + "-" + now.getDate() + ".json";
}

const FILENAME = /^[a-zA-Z0-9!#$%&'*+\-.^_`|~]+$/;

function vhostChoices(sel, first) {
  return api.get("/api/vhosts", { columns: "name" }).then((list) => {
    const was = sel.value;
    fill(sel, h("option", { value: "" }, first),
      list.map((v) => h("option", { value: v.name, selected: v.name === was }, v.name)));
  });
}

export async function render(root, params, ctx) {
  const overview = await api.get("/api/overview").catch(() => ({}));
  const exportVhost = h("select", { name: "vhost-download" }, h("option", { value: "" }, "All"));
  const filename = input({ name: "filename", value: downloadName(overview.node), autocomplete: "off",
    pattern: FILENAME.source, class: "wide" });
  const download = button("Download broker definitions", async () => {
    if (!FILENAME.test(filename.value)) {
      showError(new Error("The file name may hold only a-z A-Z 0-9 and ! # $ % & ' * + - . ^ _ ` | ~"));
      return;
    }
    try {
      const path = "/api/definitions" + (exportVhost.value ? "/" + api.esc(exportVhost.value) : "");
      const defs = await api.get(path);
      const blob = new Blob([JSON.stringify(defs, null, 2)], { type: "application/json" });
      const url = URL.createObjectURL(blob);
      const a = h("a", { download: filename.value, hidden: true });
      a.href = url; // a blob: URL of our own (h() allows only fragment links)
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      notify(`Definitions saved as ${filename.value}.`, "ok");
    } catch (e) {
      showError(e);
    }
  }, { class: "primary", id: "download-definitions" });

  const importVhost = h("select", { name: "vhost-upload" }, h("option", { value: "" }, "All"));
  const file = h("input", { type: "file", name: "file", accept: ".json,application/json" });
  const result = h("p", { class: "import-result", role: "status" });
  const form = h("form", { class: "form", id: "upload-definitions" },
    field("Definitions file", file),
    field("Virtual host", importVhost, "All: the file's vhosts; one: the file's objects go into it"),
    h("button", { type: "submit", class: "primary" }, "Upload broker definitions"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    result.textContent = "";
    const f = file.files[0];
    if (!f) {
      showError(new Error("Please choose a definitions file."));
      return;
    }
    let body;
    try {
      body = JSON.parse(await f.text());
    } catch (e) {
      showError(new Error(`"${f.name}" is not valid JSON (${e.message}); nothing was imported.`));
      return;
    }
    if (!body || typeof body !== "object" || Array.isArray(body)) {
      showError(new Error(`"${f.name}" is JSON but not a definitions object; nothing was imported.`));
      return;
    }
    try {
      const path = "/api/definitions" + (importVhost.value ? "/" + api.esc(importVhost.value) : "");
      await api.post(path, body);
      result.textContent = `Definitions from "${f.name}" imported.`;
      notify(result.textContent, "ok");
    } catch (e) {
      showError(e);
    }
  });

  root.append(adminNav(ctx, "definitions"), h("h1", {}, "Definitions"),
    section("Export definitions", h("div", { class: "form" },
      field("Filename for download", filename), field("Virtual host", exportVhost), download)),
    section("Import definitions", [form, result]));
  await Promise.all([vhostChoices(exportVhost, "All"), vhostChoices(importVhost, "All")]).catch(showError);
  return {};
}
