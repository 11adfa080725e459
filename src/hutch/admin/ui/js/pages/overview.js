// The overview (#/), as RabbitMQ's first tab: message totals, two live charts (queued
// messages and message rates), object counts, the node's facts with its alarms, and
// the listeners.  Built once; refresh() only rewrites the data parts.

import * as api from "../api.js";
import { h, fill, section, facts } from "../dom.js";
import { Chart, chartQuery } from "../charts.js";
import { num, bytes, duration } from "../format.js";

const TOTALS = [
  ["messages_ready", "Ready"],
  ["messages_unacknowledged", "Unacked"],
  ["messages", "Total"],
];

const OBJECTS = [
  ["connections", "Connections", "#/connections"],
  ["channels", "Channels", "#/channels"],
  ["exchanges", "Exchanges", "#/exchanges"],
  ["queues", "Queues", "#/queues"],
  ["consumers", "Consumers", null],
];

// A big number with its label; value() sets it.
function bigNumber(label, key, href) {
  const value = h("span", { class: "value", dataset: { total: key } }, "–");
  const name = href ? h("a", { href }, label) : label;
  const el = h("div", { class: "total" }, value, h("span", { class: "label" }, name));
  return { el, set: (v) => { value.textContent = num(v ?? 0); } };
}

// "used of limit", with the limit's meaning in words.
function usage(used, limit, fmt, what) {
  if (used === undefined || used === null) return "";
  if (limit === undefined || limit === null) return fmt(used);
  return `${fmt(used)} ${what} ${fmt(limit)}`;
}

function alarm(active, text) {
  return active
    ? h("span", { class: "alarm", dataset: { alarm: text } }, text + " alarm")
    : h("span", { class: "good" }, "OK");
}

function nodeFacts(n) {
  const pairs = [
    ["Node", n.name],
    ["Version", `${n.product_name || "Hutch"} ${n.product_version || ""}`.trim()],
    n.python_version ? ["Python", n.python_version] : null,
    ["Uptime", duration(n.uptime)],
    ["Memory", h("span", {}, usage(n.mem_used, n.mem_limit, bytes, "used, high watermark"), " ",
      alarm(n.mem_alarm, "Memory"))],
    ["Disk free", h("span", {}, usage(n.disk_free, n.disk_free_limit, bytes, "free, limit"), " ",
      alarm(n.disk_free_alarm, "Disk"))],
    n.db_dir ? ["Data directory", n.db_dir] : null,
    n.fd_used !== undefined ? ["File descriptors", usage(n.fd_used, n.fd_total, num, "of")] : null,
    n.sockets_used !== undefined ? ["Sockets", usage(n.sockets_used, n.sockets_total, num, "of")] : null,
    n.config_files && n.config_files.length ? ["Config files", n.config_files.join(", ")] : null,
  ];
  return h("div", { class: "node", dataset: { node: n.name } }, facts(pairs));
}

function listenersTable(list) {
  return h("table", { class: "list", dataset: { table: "listeners" } },
    h("thead", {}, h("tr", {}, ["Protocol", "Bound to", "Port"].map((t) => h("th", { scope: "col", class: t === "Port" ? "num" : "" }, t)))),
    h("tbody", {}, (list || []).map((l) => h("tr", {},
      h("td", {}, l.protocol), h("td", {}, l.ip_address), h("td", { class: "num" }, String(l.port))))));
}

export async function render(root, params, ctx) {
  const totals = TOTALS.map(([key, label]) => bigNumber(label, key));
  const objects = OBJECTS.map(([key, label, href]) => bigNumber(label, key, href));
  const queued = new Chart("Queued messages", "lengths",
    [["Ready", "messages_ready"], ["Unacked", "messages_unacknowledged"], ["Total", "messages"]]);
  const rates = new Chart("Message rates", "rates",
    [["Publish", "publish"], ["Publisher confirm", "confirm"], ["Deliver / get", "deliver_get"],
      ["Consumer ack", "ack"], ["Redelivered", "redeliver"]]);
  // /api/nodes needs the monitoring tag (administrators have it), as RabbitMQ's overview
  // shows its node table only to monitors.
  const monitor = ctx.has(["administrator", "monitoring"]);
  const nodes = h("div", { class: "nodes", "aria-live": "polite" });
  const listeners = h("div", {});
  const cluster = h("p", { class: "subtitle" });

  root.append(
    h("h1", {}, "Overview"), cluster,
    section("Totals", [
      h("div", { class: "totals", dataset: { group: "messages" } }, totals.map((t) => t.el)),
      h("div", { class: "charts" }, queued.el, rates.el),
    ]),
    section("Global counts", h("div", { class: "totals", dataset: { group: "objects" } },
      objects.map((t) => t.el))),
    monitor ? section("Nodes", nodes) : null,
    section("Ports and contexts", listeners),
    ctx.has(["administrator"])
      ? section("Export / import definitions", h("p", {},
        "Download or upload the broker's definitions (users, vhosts, queues, exchanges, bindings, policies) on the ",
        h("a", { href: "#/definitions" }, "Definitions page"), "."))
      : null,
  );

  async function refresh() {
    const [o, ns] = await Promise.all([api.get("/api/overview", chartQuery()),
      monitor ? api.get("/api/nodes") : Promise.resolve([])]);
    const qt = o.queue_totals || {};
    totals.forEach((t, i) => t.set(qt[TOTALS[i][0]]));
    const ot = o.object_totals || {};
    objects.forEach((t, i) => t.set(ot[OBJECTS[i][0]]));
    cluster.textContent = `Cluster ${o.cluster_name || ""} · ${o.product_name || "Hutch"} ${o.product_version || ""}`
      + ` (RabbitMQ ${o.rabbitmq_version || "?"} compatible)`;
    queued.update(qt);
    rates.update(o);
    fill(nodes, (ns || []).map(nodeFacts));
    fill(listeners, listenersTable(o.listeners));
  }

  await refresh();
  return {
    refresh,
    dispose() {
      queued.dispose();
      rates.dispose();
    },
  };
}
