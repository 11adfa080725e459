// One channel (#/channels/{name}), as RabbitMQ's page: its facts and message rates and
// the consumers on it.

import * as api from "../api.js";
import { h, fill, section, facts } from "../dom.js";
import { Chart, chartQuery } from "../charts.js";
import { num, bool, kv } from "../format.js";
import { connectionHref } from "./connections.js";
import { channelMode, modeWords } from "./channels.js";
import { simpleTable } from "./exchange.js";

function queueHref(q) {
  return "#/queues/" + api.esc(q.vhost) + "/" + api.esc(q.name);
}

export async function render(root, params, ctx) {
  const name = params.name;
  const path = "/api/channels/" + api.esc(name);
  const load = () => api.get(path, chartQuery());
  let ch = await load();
  let closed = false;

  // RabbitMQ's channel object has consumer_details; without it, the vhost's consumers
  // on this channel (the API already limits them to what the user may see).
  const consumers = async () => {
    if (Array.isArray(ch.consumer_details)) return ch.consumer_details;
    const all = await api.get("/api/consumers/" + api.esc(ch.vhost));
    return all.filter((c) => c.channel_details && c.channel_details.name === ch.name);
  };

  const chart = new Chart("Message rates", "rates", [
    ["Publish", "publish"], ["Confirm", "confirm"], ["Deliver / get", "deliver_get"],
    ["Redelivered", "redeliver"], ["Ack", "ack"],
  ]);
  const factsBox = h("div", { class: "channel-facts" });
  const consumersBox = h("div", { id: "consumers" });
  const gone = h("p", { class: "error", role: "alert", id: "channel-gone", hidden: true });

  const show = async () => {
    const conn = ch.connection_details || {};
    fill(factsBox, facts([
      ["Connection", conn.name ? h("a", { href: connectionHref(conn.name) }, conn.name) : ""],
      ["Username", ch.user],
      ["Virtual host", ch.vhost],
      ["Mode", h("span", {}, channelMode(ch), " ", modeWords(ch))],
      ["State", ch.state],
      ["Prefetch count", num(ch.prefetch_count)],
      ["Global prefetch count", num(ch.global_prefetch_count)],
      ["Messages unacknowledged", num(ch.messages_unacknowledged)],
      ["Messages unconfirmed", num(ch.messages_unconfirmed)],
      ["Messages uncommitted", num(ch.messages_uncommitted)],
      ["Acks uncommitted", num(ch.acks_uncommitted)],
      ["Consumers", num(ch.consumer_count)],
    ]));
    chart.update(ch);
    const list = await consumers();
    fill(consumersBox, simpleTable("consumers", [
      ["Consumer tag", (c) => c.consumer_tag],
      ["Queue", (c) => h("a", { href: queueHref(c.queue) }, c.queue.name)],
      ["Ack required", (c) => bool(c.ack_required)],
      ["Exclusive", (c) => bool(c.exclusive)],
      ["Prefetch count", (c) => num(c.prefetch_count)],
      ["Active", (c) => (c.active === undefined ? "" : bool(c.active))],
      ["Arguments", (c) => kv(c.arguments)],
    ], list, "No consumers"));
  };

  root.append(
    h("h1", {}, "Channel ", h("span", { class: "object-name", id: "channel-name" }, name)),
    gone,
    section("Overview", [h("div", { class: "charts" }, chart.el), factsBox]),
    section("Consumers", consumersBox, { id: "channel-consumers" }),
  );
  await show();

  return {
    async refresh() {
      if (closed) return;
      try {
        ch = await load();
      } catch (e) {
        if (e.status !== 404) throw e;
        closed = true;
        gone.textContent = "This channel has closed.";
        gone.hidden = false;
        return;
      }
      await show();
    },
    dispose: () => chart.dispose(),
  };
}
