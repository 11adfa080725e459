// The channels list (#/channels), RabbitMQ's columns: channel, user, mode (C confirm,
// T transactional), state, unconfirmed, prefetch, unacked and the message rates.

import * as api from "../api.js";
import { h, section } from "../dom.js";
import { Table } from "../table.js";
import { num, rateOf } from "../format.js";

export function channelHref(name) {
  return "#/channels/" + api.esc(name);
}

// RabbitMQ's "Mode" column: C for confirm mode, T for transactional.
export function channelMode(ch) {
  const modes = [];
  if (ch.confirm) modes.push(h("abbr", { class: "tag mode", title: "Confirm" }, "C"));
  if (ch.transactional) modes.push(h("abbr", { class: "tag mode", title: "Transactional" }, "T"));
  return h("span", { class: "modes" }, modes);
}

export function modeWords(ch) {
  return [ch.confirm ? "confirm" : null, ch.transactional ? "transactional" : null].filter(Boolean).join(", ") || "normal";
}

// The per-consumer prefetch, and the channel-wide (global) one when set.
export function prefetchText(ch) {
  const parts = [];
  if (ch.prefetch_count) parts.push(num(ch.prefetch_count));
  if (ch.global_prefetch_count) parts.push(num(ch.global_prefetch_count) + " (global)");
  return parts.join(" ");
}

function rateColumn(key, label) {
  return {
    key, label, numeric: true, sort: "message_stats." + key + "_details.rate",
    render: (ch) => rateOf(ch.message_stats, key),
  };
}

export function channelColumns() {
  return [
    {
      key: "name", label: "Channel", sort: "name",
      render: (ch) => h("a", { href: channelHref(ch.name), class: "channel-link" }, ch.name),
    },
    { key: "vhost", label: "Virtual host", sort: "vhost" },
    { key: "user", label: "User name", sort: "user" },
    { key: "mode", label: "Mode", render: channelMode, title: "C: confirm mode, T: transactional" },
    { key: "state", label: "State", sort: "state" },
    { key: "messages_unconfirmed", label: "Unconfirmed", sort: "messages_unconfirmed", numeric: true },
    { key: "prefetch_count", label: "Prefetch", sort: "prefetch_count", numeric: true, render: prefetchText },
    { key: "messages_unacknowledged", label: "Unacked", sort: "messages_unacknowledged", numeric: true },
    rateColumn("publish", "Publish"),
    rateColumn("confirm", "Confirm"),
    rateColumn("deliver_get", "Deliver / get"),
    rateColumn("ack", "Ack"),
  ];
}

export async function render(root, params, ctx) {
  const table = new Table({
    name: "channels",
    label: "channels",
    paged: true,
    empty: "No channels",
    load: (q) => api.get("/api/channels", q),
    columns: channelColumns(),
  });
  root.append(h("h1", {}, "Channels"), section("All channels", table.el));
  await table.refresh();
  return { refresh: () => table.refresh() };
}
