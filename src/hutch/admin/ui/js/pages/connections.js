// The connections list (#/connections), RabbitMQ's columns: name, user, vhost, state,
// TLS, protocol, channels, client, data rates and heartbeat.  What a user sees is what
// the API gives it (a management user: only its own connections).

import * as api from "../api.js";
import { h, section } from "../dom.js";
import { Table } from "../table.js";
import { num, bytes, timestamp } from "../format.js";

export function connectionHref(name) {
  return "#/connections/" + api.esc(name);
}

// "Pika Python Client Library 1.4.4", from the client's properties.
export function clientText(props) {
  if (!props) return "";
  return [props.product, props.version].filter((s) => s !== undefined && s !== null && s !== "").map(String).join(" ");
}

// Bytes per second from a *_details object ("" when the API has no such figure).
export function dataRate(details) {
  return details && details.rate !== undefined ? bytes(details.rate) + "/s" : "";
}

export function heartbeat(seconds) {
  return seconds ? num(seconds) + "s" : "";
}

// The name cell: a link, and the client-provided name under it as RabbitMQ shows it.
export function connectionName(c) {
  const given = c.client_properties && c.client_properties.connection_name;
  return h("span", {}, h("a", { href: connectionHref(c.name), class: "connection-link" }, c.name),
    given !== undefined && given !== null && given !== ""
      ? h("small", { class: "client-name" }, String(given)) : null);
}

export function connectionColumns() {
  return [
    { key: "name", label: "Name", sort: "name", render: connectionName },
    { key: "vhost", label: "Virtual host", sort: "vhost" },
    { key: "user", label: "User name", sort: "user" },
    { key: "state", label: "State", sort: "state" },
    { key: "ssl", label: "SSL / TLS", sort: "ssl", title: "TLS in use",
      render: (c) => h("span", { role: "img", "aria-label": c.ssl ? "TLS" : "no TLS", title: c.ssl ? "TLS" : "no TLS" },
        c.ssl ? "●" : "○"),
    },
    { key: "protocol", label: "Protocol", sort: "protocol" },
    { key: "channels", label: "Channels", sort: "channels", numeric: true },
    { key: "client", label: "Client", sort: "client_properties.product", render: (c) => clientText(c.client_properties) },
    {
      key: "recv", label: "From client", sort: "recv_oct_details.rate", numeric: true,
      render: (c) => dataRate(c.recv_oct_details),
    },
    {
      key: "send", label: "To client", sort: "send_oct_details.rate", numeric: true,
      render: (c) => dataRate(c.send_oct_details),
    },
    { key: "timeout", label: "Heartbeat", sort: "timeout", numeric: true, render: (c) => heartbeat(c.timeout) },
    { key: "connected_at", label: "Connected at", sort: "connected_at", render: (c) => timestamp(c.connected_at) },
  ];
}

export async function render(root, params, ctx) {
  const table = new Table({
    name: "connections",
    label: "connections",
    paged: true,
    empty: "No connections",
    load: (q) => api.get("/api/connections", q),
    columns: connectionColumns(),
  });
  root.append(h("h1", {}, "Connections"), section("All connections", table.el));
  await table.refresh();
  return { refresh: () => table.refresh() };
}
