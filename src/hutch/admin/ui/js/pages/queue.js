// One queue (#/queues/{vhost}/{name}), as RabbitMQ's queue page: its facts, charts of
// its depth and rates, consumers, bindings (add / unbind), and the actions of
// queue_actions.js (get, publish, move, delete, purge).  refresh() rewrites the data
// parts; the forms are built once and never rebuilt under the user's typing.

import * as api from "../api.js";
import { h, fill, section, facts, field, input, button, act, confirmed, keepFocus } from "../dom.js";
import { Chart, chartQuery } from "../charts.js";
import { featureTags, ArgsEditor } from "../widgets.js";
import { num, bytes, bool, kv } from "../format.js";
import { actionSections, valueView } from "./queue_actions.js";

function queueFacts(q) {
  const pct = (x) => (x === undefined || x === null ? null : Math.round(x * 100) + "%");
  const pairs = [
    ["Type", q.type],
    ["Features", featureTags(q)],
    ["State", h("span", { class: q.state === "running" ? "" : "alarm" }, q.state)],
    ["Consumers", num(q.consumers)],
    q.consumer_utilisation !== undefined && q.consumer_utilisation !== null
      ? ["Consumer utilisation", pct(q.consumer_utilisation)] : null,
    ["Policy", q.policy || ""],
    q.operator_policy ? ["Operator policy", q.operator_policy] : null,
    q.effective_policy_definition && Object.keys(q.effective_policy_definition).length
      ? ["Effective policy definition", h("pre", { class: "kv" }, kv(q.effective_policy_definition))] : null,
    ["Arguments", h("pre", { class: "kv" }, kv(q.arguments))],
    q.exclusive_consumer_tag ? ["Exclusive consumer", q.exclusive_consumer_tag] : null,
    q.single_active_consumer_tag ? ["Single active consumer", q.single_active_consumer_tag] : null,
    ["Node", q.node || ""],
  ];
  return facts(pairs);
}

function countsTable(q) {
  const row = (label, a, b, c) => h("tr", {}, h("th", { scope: "row" }, label),
    h("td", { class: "num" }, a), h("td", { class: "num" }, b), h("td", { class: "num" }, c));
  return h("table", { class: "list counts", dataset: { table: "counts" } },
    h("thead", {}, h("tr", {}, h("td", {}), ["Ready", "Unacked", "Total"].map((t) => h("th", { scope: "col", class: "num" }, t)))),
    h("tbody", {},
      row("Messages", num(q.messages_ready ?? 0), num(q.messages_unacknowledged ?? 0), num(q.messages ?? 0)),
      row("Message body bytes", bytes(q.message_bytes_ready ?? 0), bytes(q.message_bytes_unacknowledged ?? 0),
        bytes(q.message_bytes ?? 0))));
}

function consumersTable(list) {
  const cols = ["Channel", "Consumer tag", "Ack required", "Exclusive", "Prefetch count", "Active", "Arguments"];
  if (!list || list.length === 0) return h("p", { class: "empty" }, "No consumers");
  return h("table", { class: "list", dataset: { table: "consumers" } },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, list.map((c) => {
      const chName = c.channel_details && c.channel_details.name;
      return h("tr", { dataset: { key: c.consumer_tag } },
        h("td", {}, chName ? h("a", { href: "#/channels/" + api.esc(chName) }, chName) : ""),
        h("td", {}, c.consumer_tag),
        h("td", {}, bool(c.ack_required)),
        h("td", {}, bool(c.exclusive)),
        h("td", { class: "num" }, num(c.prefetch_count ?? 0)),
        h("td", {}, c.active === undefined ? "" : bool(c.active)),
        h("td", {}, valueView(c.arguments || {})));
    })));
}

function bindingsTable(list, unbind) {
  return h("table", { class: "list", dataset: { table: "bindings" } },
    h("thead", {}, h("tr", {}, ["From", "Routing key", "Arguments", ""].map((c) =>
      h("th", { scope: "col" }, c || h("span", { class: "visually-hidden" }, "Action"))))),
    h("tbody", {}, list.map((b) => h("tr", { dataset: { key: b.source + "\u0000" + b.properties_key } },
      h("td", {}, b.source === ""
        ? "(Default exchange binding)"
        : h("a", { href: "#/exchanges/" + api.esc(b.vhost) + "/" + api.esc(b.source) }, b.source)),
      h("td", {}, b.routing_key),
      h("td", {}, valueView(b.arguments || {})),
      h("td", {}, b.source === "" ? "" : button("Unbind", () => unbind(b), {
        class: "unbind", "aria-label": `Unbind from ${b.source} with routing key ${b.routing_key}`,
      }))))));
}

function addBindingForm(vhost, name, onAdded) {
  const exchange = input({ name: "source", required: true, autocomplete: "off" });
  const key = input({ name: "routing_key", autocomplete: "off" });
  const args = new ArgsEditor("Arguments");
  const form = h("form", { class: "form", id: "add-binding" },
    field("From exchange", exchange), field("Routing key", key), args.el,
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Bind")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const src = exchange.value;
    await act(async () => {
      if (!src) throw new Error("Which exchange? Give its name.");
      await api.post(`/api/bindings/${api.esc(vhost)}/e/${api.esc(src)}/q/${api.esc(name)}`,
        { routing_key: key.value, arguments: args.value() });
      exchange.value = "";
      key.value = "";
      args.clear();
      await onAdded();
    }, `Bound to exchange "${src}".`);
  });
  return form;
}

export async function render(root, params, ctx) {
  const { vhost, name } = params;
  const path = `/api/queues/${api.esc(vhost)}/${api.esc(name)}`;
  let q = await api.get(path, chartQuery());

  const factsBox = h("div", { class: "queue-facts" });
  const countsBox = h("div", { class: "queue-counts" });
  const depth = new Chart("Queued messages", "lengths",
    [["Ready", "messages_ready"], ["Unacked", "messages_unacknowledged"], ["Total", "messages"]]);
  const rates = new Chart("Message rates", "rates",
    [["Publish", "publish"], ["Deliver / get", "deliver_get"], ["Consumer ack", "ack"], ["Redelivered", "redeliver"]]);
  const consumersBox = h("div", {});
  const consumersTitle = h("span", {});
  const bindingsBox = h("div", {});
  const bindingsTitle = h("span", {});
  const overview = h("div", { class: "queue-overview" }, factsBox, countsBox);

  async function loadBindings() {
    const list = await api.get(path + "/bindings");
    bindingsTitle.textContent = `Bindings (${list.length})`;
    keepFocus(bindingsBox, () => fill(bindingsBox, bindingsTable(list, unbind)));
  }

  async function unbind(b) {
    if (!(await confirmed(`Unbind queue "${name}" from exchange "${b.source}" (routing key "${b.routing_key}")?`))) return;
    await act(async () => {
      // properties_key is already a path segment (the routing key percent-encoded).
      await api.del(`/api/bindings/${api.esc(vhost)}/e/${api.esc(b.source)}/q/${api.esc(name)}/${b.properties_key}`);
      await loadBindings();
    }, `Unbound from exchange "${b.source}".`);
  }

  function show(data) {
    q = data;
    fill(factsBox, queueFacts(q));
    fill(countsBox, countsTable(q));
    depth.update(q);
    rates.update(q);
    const list = q.consumer_details || [];
    consumersTitle.textContent = `Consumers (${list.length})`;
    fill(consumersBox, consumersTable(list));
  }

  root.append(
    h("h1", {}, h("span", { class: "kind" }, "Queue "), h("span", { class: "queue-title" }, name)),
    h("p", { class: "subtitle" }, "Virtual host ", h("span", { class: "vhost" }, vhost), " · ",
      h("a", { href: "#/queues" }, "All queues")),
    section("Overview", [overview, h("div", { class: "charts" }, depth.el, rates.el)]),
    section(consumersTitle, consumersBox, { id: "consumers" }),
    section(bindingsTitle, [bindingsBox, h("h3", {}, "Add binding to this queue"),
      addBindingForm(vhost, name, loadBindings)], { id: "bindings" }),
    ...actionSections({ vhost, name, path, ctx, reload: () => refresh() }),
  );
  show(q);
  await loadBindings();

  async function refresh() {
    const [data] = await Promise.all([api.get(path, chartQuery()), loadBindings()]);
    show(data);
  }

  return {
    refresh,
    dispose() {
      depth.dispose();
      rates.dispose();
    },
  };
}
