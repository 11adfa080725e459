// The queues list (#/queues): one page of the API's paged, sorted, filtered list (so
// 10,000 queues cost the browser one page of rows), and RabbitMQ's "Add a new queue".

import * as api from "../api.js";
import { h, section, field, input, select, button, act, formValues } from "../dom.js";
import { Table } from "../table.js";
import { featureTags, vhostSelect, ArgsEditor } from "../widgets.js";
import { rateOf } from "../format.js";

// The fields a row shows: the API leaves out the rest (consumer details, backing stats).
const COLUMNS = [
  "name", "vhost", "type", "durable", "auto_delete", "exclusive", "arguments", "policy", "state",
  "messages_ready", "messages_unacknowledged", "messages",
  "message_stats.publish_details.rate", "message_stats.deliver_get_details.rate",
  "message_stats.ack_details.rate",
].join(",");

// RabbitMQ's argument shortcuts under the form, per queue type: [label, key, type].
const COMMON = [
  ["Auto expire", "x-expires", "number"], ["Message TTL", "x-message-ttl", "number"],
  ["Overflow behaviour", "x-overflow", "string"],
  ["Single active consumer", "x-single-active-consumer", "boolean"],
  ["Dead letter exchange", "x-dead-letter-exchange", "string"],
  ["Dead letter routing key", "x-dead-letter-routing-key", "string"],
  ["Max length", "x-max-length", "number"], ["Max length bytes", "x-max-length-bytes", "number"],
];
const SHORTCUTS = {
  classic: [...COMMON, ["Maximum priority", "x-max-priority", "number"],
    ["Delivery limit", "x-delivery-limit", "number"], ["Leader locator", "x-queue-leader-locator", "string"]],
  quorum: [...COMMON, ["Delivery limit", "x-delivery-limit", "number"],
    ["Initial cluster size", "x-quorum-initial-group-size", "number"],
    ["Dead letter strategy", "x-dead-letter-strategy", "string"],
    ["Leader locator", "x-queue-leader-locator", "string"]],
  stream: [["Max length bytes", "x-max-length-bytes", "number"], ["Max time retention", "x-max-age", "string"],
    ["Max segment size in bytes", "x-stream-max-segment-size-bytes", "number"],
    ["Filter size (per chunk) in bytes", "x-stream-filter-size-bytes", "number"],
    ["Initial cluster size", "x-initial-cluster-size", "number"],
    ["Leader locator", "x-queue-leader-locator", "string"]],
};

export function queueHref(q) {
  return "#/queues/" + api.esc(q.vhost) + "/" + api.esc(q.name);
}

function columns(showVhost) {
  const cols = [
    { key: "name", label: "Name", sort: "name",
      render: (q) => h("a", { href: queueHref(q), class: "queue-name" }, q.name) },
    { key: "type", label: "Type", sort: "type" },
    { key: "features", label: "Features", render: featureTags },
    { key: "state", label: "State", sort: "state" },
    { key: "messages_ready", label: "Ready", sort: "messages_ready", numeric: true },
    { key: "messages_unacknowledged", label: "Unacked", sort: "messages_unacknowledged", numeric: true },
    { key: "messages", label: "Total", sort: "messages", numeric: true },
    { key: "in", label: "Incoming", sort: "message_stats.publish_details.rate", numeric: true,
      title: "Messages published to the queue per second",
      render: (q) => rateOf(q.message_stats, "publish") },
    { key: "out", label: "Deliver / get", sort: "message_stats.deliver_get_details.rate", numeric: true,
      render: (q) => rateOf(q.message_stats, "deliver_get") },
    { key: "ack", label: "Ack", sort: "message_stats.ack_details.rate", numeric: true,
      render: (q) => rateOf(q.message_stats, "ack") },
  ];
  if (showVhost) cols.splice(0, 0, { key: "vhost", label: "Virtual host", sort: "vhost" });
  return cols;
}

function addQueueForm(onAdded) {
  const type = select("queuetype", [["classic", "Classic"], ["quorum", "Quorum"], ["stream", "Stream"]], "classic");
  const name = input({ name: "name", required: true, autocomplete: "off" });
  const durable = select("durable", [["true", "Durable"], ["false", "Transient"]], "true");
  const autoDelete = select("auto_delete", [["false", "No"], ["true", "Yes"]], "false");
  const args = new ArgsEditor("Arguments");
  const links = h("p", { class: "arg-shortcuts" });
  const durableField = field("Durability", durable);
  const adField = field("Auto delete", autoDelete, "Deleted when its last consumer unsubscribes");
  const showShortcuts = () => {
    links.replaceChildren("Add: ");
    for (const [label, key, t] of SHORTCUTS[type.value] || []) {
      links.append(button(label, () => {
        const row = args.addRow(key, "", t);
        row.querySelector("[name=arg-value]").focus();
      }, { class: "link", title: key, dataset: { arg: key } }), " ");
    }
    // Quorum and stream queues are always durable and never auto-delete (RabbitMQ hides them).
    durableField.hidden = type.value !== "classic";
    adField.hidden = type.value !== "classic";
  };
  type.addEventListener("change", showShortcuts);
  showShortcuts();
  const vhost = vhostSelect("/");
  const form = h("form", { class: "form", id: "add-queue" },
    field("Type", type), field("Virtual host", vhost), field("Name", name),
    durableField, adField, args.el, links,
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Add queue")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    await act(async () => {
      const a = args.value();
      if (!v.name.trim()) throw new Error("A queue needs a name.");
      const classic = type.value === "classic";
      a["x-queue-type"] = type.value;
      await api.put("/api/queues/" + api.esc(vhost.value) + "/" + api.esc(v.name), {
        durable: classic ? durable.value === "true" : true,
        auto_delete: classic ? autoDelete.value === "true" : false,
        arguments: a,
      });
      name.value = "";
      args.clear();
      await onAdded();
    }, `Queue "${v.name}" added.`);
  });
  return form;
}

export async function render(root, params, ctx) {
  const vhosts = await api.get("/api/vhosts", { columns: "name" }).catch(() => [{ name: "/" }]);
  const table = new Table({
    name: "queues", label: "queues", paged: true, columns: columns(vhosts.length > 1),
    empty: "No queues",
    rowKey: (q) => q.vhost + "/" + q.name,
    load: (q) => api.get("/api/queues", { ...q, columns: COLUMNS }),
  });
  root.append(h("h1", {}, "Queues"),
    section("All queues", table.el),
    section("Add a new queue", addQueueForm(() => table.refresh()), { open: false, id: "add-queue-section" }));
  await table.refresh();
  return { refresh: () => table.refresh() };
}
