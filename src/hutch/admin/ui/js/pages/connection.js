// One connection (#/connections/{name}), as RabbitMQ's page: facts, TLS details, the
// client's properties (shown as text: the client chose them), data rates when the API
// has them, its channels, and "Close this connection" with a reason (X-Reason).

import * as api from "../api.js";
import { h, fill, field, input, button, section, facts, act, confirmed, notify } from "../dom.js";
import { Chart } from "../charts.js";
import { Table } from "../table.js";
import { num, timestamp, bool } from "../format.js";
import { clientText, dataRate, heartbeat } from "./connections.js";
import { channelColumns } from "./channels.js";

const DATA_RATES = { data_rates_age: 600, data_rates_incr: 5 };

// Client properties as a two-column table; nested tables (capabilities) nest.
export function propertiesTable(obj, caption) {
  const rows = Object.entries(obj || {});
  return h("table", { class: "list props" },
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Property"), h("th", { scope: "col" }, "Value"))),
    h("tbody", {}, rows.length === 0
      ? h("tr", {}, h("td", { colspan: 2, class: "empty" }, "None"))
      : rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, propertyValue(v))))));
}

function propertyValue(v) {
  if (v && typeof v === "object" && !Array.isArray(v)) return propertiesTable(v);
  if (Array.isArray(v)) return JSON.stringify(v);
  if (typeof v === "boolean") return String(v);
  return v === null || v === undefined ? "" : String(v);
}

function tlsFacts(c) {
  if (!c.ssl) return [];
  // Only what the API reports (RabbitMQ's ssl_* and peer_cert_* fields).
  return [
    ["TLS protocol", c.ssl_protocol],
    ["Key exchange", c.ssl_key_exchange],
    ["Cipher", c.ssl_cipher],
    ["Hash", c.ssl_hash],
    ["Peer certificate subject", c.peer_cert_subject],
    ["Peer certificate issuer", c.peer_cert_issuer],
    ["Peer certificate validity", c.peer_cert_validity],
  ].filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => [k, String(v)]);
}

export async function render(root, params, ctx) {
  const name = params.name;
  const path = "/api/connections/" + api.esc(name);
  const load = () => api.get(path, DATA_RATES);
  let c = await load();
  let closed = false;

  const factsBox = h("div", { class: "connection-facts" });
  const chartBox = h("div", { class: "charts" });
  let chart = null;
  const propsBox = h("div", { id: "client-properties" });
  const show = () => {
    const given = c.client_properties && c.client_properties.connection_name;
    fill(factsBox, facts([
      given !== undefined && given !== null ? ["Client-provided name", String(given)] : null,
      ["Username", c.user],
      ["Virtual host", c.vhost],
      ["State", c.state],
      ["Protocol", c.protocol],
      ["Client", clientText(c.client_properties)],
      ["Peer", (c.peer_host || "") + ":" + (c.peer_port ?? "")],
      ["Local", (c.host || "") + ":" + (c.port ?? "")],
      ["SSL / TLS", bool(c.ssl)],
      ...tlsFacts(c),
      ["SASL auth mechanism", c.auth_mechanism || ""],
      ["Heartbeat", heartbeat(c.timeout) || "off"],
      ["Frame max", num(c.frame_max) + " bytes"],
      ["Channel limit", num(c.channel_max) + " channels"],
      ["Channels", num(c.channels)],
      ["Connected at", timestamp(c.connected_at)],
      c.recv_oct_details ? ["From client", dataRate(c.recv_oct_details)] : null,
      c.send_oct_details ? ["To client", dataRate(c.send_oct_details)] : null,
    ]));
    fill(propsBox, propertiesTable(c.client_properties));
    // A data-rates chart only when the API keeps samples of the byte counters.
    const recv = c.recv_oct_details;
    if (recv && recv.samples) {
      if (!chart) {
        chart = new Chart("Data rates (bytes)", "rates", [["From client", "recv_oct"], ["To client", "send_oct"]]);
        chartBox.append(chart.el);
      }
      chart.update({ message_stats: { recv_oct_details: recv, send_oct_details: c.send_oct_details } });
    }
  };

  const gone = h("p", { class: "error", role: "alert", id: "connection-gone", hidden: true });
  const channels = new Table({
    name: "connection-channels",
    label: "channels",
    filter: false,
    empty: "No channels",
    load: () => api.get(path + "/channels"),
    columns: channelColumns(),
  });

  root.append(
    h("h1", {}, "Connection ", h("span", { class: "object-name", id: "connection-name" }, name)),
    gone,
    section("Overview", [chartBox, factsBox]),
    section("Channels", channels.el, { id: "channels" }),
    section("Client properties", propsBox, { id: "client-props" }),
    section("Close this connection", closeForm(path, name, ctx), { id: "close" }),
  );
  show();
  await channels.refresh();

  return {
    async refresh() {
      if (closed) return;
      try {
        c = await load();
      } catch (e) {
        if (e.status !== 404) throw e;
        closed = true;
        gone.textContent = "This connection has closed.";
        gone.hidden = false;
        return;
      }
      show();
      await channels.refresh();
    },
    dispose: () => chart && chart.dispose(),
  };
}

function closeForm(path, name, ctx) {
  const reason = input({ name: "reason", value: "Closed via management plugin", size: 40 });
  const form = h("form", { class: "form", id: "close-form" },
    field("Reason", reason, "Sent to the client in connection.close (320 CONNECTION_FORCED)"),
    h("div", { class: "field" }, button("Force Close", null, { type: "submit", class: "danger", id: "force-close" })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!(await confirmed(`Close the connection "${name}"?`))) return;
    const done = await act(() => api.del(path, undefined, { "X-Reason": reason.value }));
    if (done === undefined) return;
    notify("Connection closed.", "ok");
    ctx.go("#/connections");
  });
  return form;
}
