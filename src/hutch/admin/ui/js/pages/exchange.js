// One exchange (#/exchanges/{vhost}/{name}), as RabbitMQ's page: its facts and message
// rates, the bindings to and from it (add, unbind), publish a message, delete.

import * as api from "../api.js";
import { h, fill, field, input, select, button, section, facts, act, notify, confirmed, showError } from "../dom.js";
import { Chart, chartQuery } from "../charts.js";
import { kv } from "../format.js";
import { ArgsEditor } from "../widgets.js";
import { exchangeLabel, exchangeUrlName, exchangeHref, exchangeFeatures } from "./exchanges.js";

// A small table of rows (no paging: an exchange's bindings), with real header cells.
export function simpleTable(name, columns, rows, empty) {
  return h("table", { class: "list", dataset: { table: name } },
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, rows.length === 0
      ? h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty))
      : rows.map((r) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(r)))))));
}

function queueHref(vhost, name) {
  return "#/queues/" + api.esc(vhost) + "/" + api.esc(name);
}

function destinationLink(b) {
  const href = b.destination_type === "queue" ? queueHref(b.vhost, b.destination) : exchangeHref(b.vhost, b.destination);
  return [h("span", { class: "muted" }, b.destination_type === "queue" ? "queue " : "exchange "),
    h("a", { href }, b.destination)];
}

function argsText(args) {
  const text = kv(args);
  return text ? h("pre", { class: "args-text" }, text) : "";
}

export async function render(root, params, ctx) {
  const vhost = params.vhost;
  const urlName = params.name;
  const name = urlName === "amq.default" ? "" : urlName;
  const path = "/api/exchanges/" + api.esc(vhost) + "/" + api.esc(exchangeUrlName(name));
  const load = () => api.get(path, chartQuery());
  let x = await load();

  const chart = new Chart("Message rates", "rates", [["Publish (In)", "publish_in"], ["Publish (Out)", "publish_out"]]);
  const factsBox = h("div", { class: "exchange-facts" });
  const showFacts = () => fill(factsBox, facts([
    ["Virtual host", x.vhost],
    ["Type", x.type],
    ["Features", exchangeFeatures(x)],
    ["Durable", x.durable ? "yes" : "no"],
    ["Auto delete", x.auto_delete ? "yes" : "no"],
    ["Internal", x.internal ? "yes" : "no"],
    ["Policy", x.policy || ""],
    ["Arguments", argsText(x.arguments)],
    x.messages_delayed !== undefined ? ["Messages delayed", String(x.messages_delayed)] : null,
  ]));
  showFacts();

  root.append(
    h("h1", {}, "Exchange: ", h("span", { class: "object-name", id: "exchange-name" }, exchangeLabel(name))),
    h("p", { class: "subtitle" }, "in virtual host ", h("strong", {}, vhost)),
    section("Overview", [h("div", { class: "charts" }, chart.el), factsBox]),
  );

  // -- bindings ----------------------------------------------------------------------------
  const bindingsBox = h("div", { class: "bindings" });
  let refreshBindings = async () => {};
  if (name === "") {
    bindingsBox.append(h("p", {},
      "The default exchange is implicitly bound to every queue, with a routing key equal to the " +
      "queue name. It is not possible to bind to, unbind from or delete the default exchange."));
  } else {
    const toBox = h("div", { id: "bindings-to" });
    const fromBox = h("div", { id: "bindings-from" });
    const unbind = (b) => button("Unbind", async () => {
      const dtype = b.destination_type === "queue" ? "q" : "e";
      const done = await act(() => api.del("/api/bindings/" + api.esc(b.vhost) + "/e/" + api.esc(b.source) + "/" +
        // properties_key is already percent-encoded, and the API takes it as it is.
        dtype + "/" + api.esc(b.destination) + "/" + b.properties_key), "Binding removed.");
      if (done !== undefined) await refreshBindings();
    }, { class: "unbind", "aria-label": `Unbind ${b.destination} (routing key ${b.routing_key})` });
    refreshBindings = async () => {
      const [to, from] = await Promise.all([
        api.get(path + "/bindings/destination"), api.get(path + "/bindings/source")]);
      fill(toBox, to.length === 0 ? null : [
        h("h3", {}, "Bindings to this exchange"),
        simpleTable("bindings-to", [
          ["From exchange", (b) => h("a", { href: exchangeHref(b.vhost, b.source) }, exchangeLabel(b.source))],
          ["Routing key", (b) => b.routing_key],
          ["Arguments", (b) => argsText(b.arguments)],
          ["Action", (b) => unbind(b)],
        ], to, ""),
        h("p", { class: "arrow", "aria-hidden": "true" }, "⇓"),
      ]);
      fill(fromBox,
        h("p", {}, h("strong", {}, "This exchange")),
        h("p", { class: "arrow", "aria-hidden": "true" }, "⇓"),
        simpleTable("bindings-from", [
          ["To", destinationLink],
          ["Routing key", (b) => b.routing_key],
          ["Arguments", (b) => argsText(b.arguments)],
          ["Action", (b) => unbind(b)],
        ], from, "No bindings from this exchange"));
    };
    bindingsBox.append(toBox, fromBox, bindForm(vhost, name, () => refreshBindings()));
    await refreshBindings();
  }
  root.append(section("Bindings", bindingsBox, { id: "bindings" }));

  // -- publish, delete ------------------------------------------------------------------------
  if (!x.internal) root.append(section("Publish message", publishForm(vhost, name, path), { id: "publish" }));
  if (name !== "") root.append(section("Delete this exchange", deleteForm(vhost, name, path, ctx), { id: "delete" }));

  chart.update(x);
  return {
    async refresh() {
      x = await load();
      showFacts();
      chart.update(x);
      await refreshBindings();
    },
    dispose: () => chart.dispose(),
  };
}

function bindForm(vhost, source, done) {
  const dtype = select("destination_type", [["q", "To queue"], ["e", "To exchange"]], "q");
  dtype.setAttribute("aria-label", "Destination type");
  const dest = input({ name: "destination", required: true, autocomplete: "off", "aria-label": "Destination name" });
  const key = input({ name: "routing_key", autocomplete: "off" });
  const args = new ArgsEditor("Arguments");
  const form = h("form", { class: "form", id: "bind-form" },
    h("h3", { class: "form-title" }, "Add binding from this exchange"),
    h("div", { class: "field" }, dtype, dest),
    field("Routing key", key),
    args.el,
    h("div", { class: "field" }, button("Bind", null, { type: "submit", class: "primary" })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!dest.value) {
      notify("A binding needs a destination name.", "error");
      dest.focus();
      return;
    }
    const ok = await act(async () => {
      await api.post("/api/bindings/" + api.esc(vhost) + "/e/" + api.esc(source) + "/" + dtype.value + "/" +
        api.esc(dest.value), { routing_key: key.value, arguments: args.value() });
      return true;
    }, "Binding added.");
    if (ok) {
      dest.value = "";
      key.value = "";
      args.clear();
      await done();
    }
  });
  return form;
}

// Message properties the API accepts, as RabbitMQ's help for the publish form lists them.
const PROPERTY_NAMES = ["content_type", "content_encoding", "priority", "correlation_id", "reply_to",
  "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id"];
const NUMERIC_PROPERTIES = ["priority", "timestamp"];

export function publishForm(vhost, name, path) {
  const key = input({ name: "routing_key", autocomplete: "off" });
  const mode = select("delivery_mode", [["1", "1 - Non-persistent"], ["2", "2 - Persistent"]], "2");
  const headers = new ArgsEditor("Headers");
  const props = new ArgsEditor("Properties", { types: ["string"] });
  props.el.querySelector(".add-row").textContent = "Add property";
  const payload = h("textarea", { name: "payload", rows: 5 });
  const encoding = select("payload_encoding", [["string", "String (default)"], ["base64", "Base64"]], "string");
  const result = h("p", { class: "publish-result", role: "status", "aria-live": "polite" });
  const form = h("form", { class: "form publish-form", id: "publish-form" },
    field("Routing key", key),
    field("Delivery mode", mode),
    headers.el,
    props.el,
    h("small", { class: "help" }, "Properties: " + PROPERTY_NAMES.join(", ")),
    field("Payload", payload),
    field("Payload encoding", encoding),
    h("div", { class: "field" }, button("Publish message", null, { type: "submit", class: "primary" })),
    result);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    result.textContent = "";
    let properties;
    try {
      properties = { delivery_mode: Number(mode.value), headers: headers.value() };
      for (const [k, v] of Object.entries(props.value())) {
        if (!PROPERTY_NAMES.includes(k)) throw new Error(`"${k}" is not a message property (${PROPERTY_NAMES.join(", ")})`);
        properties[k] = NUMERIC_PROPERTIES.includes(k) && v.trim() !== "" && !Number.isNaN(Number(v)) ? Number(v) : v;
      }
    } catch (e) {
      showError(e);
      return;
    }
    const r = await act(() => api.post(path + "/publish", {
      properties, routing_key: key.value, payload: payload.value, payload_encoding: encoding.value,
    }));
    if (!r) return;
    if (r.routed) {
      result.textContent = "Message published.";
      result.className = "publish-result good";
      notify("Message published.", "ok");
    } else {
      result.textContent = "Message published, but not routed.";
      result.className = "publish-result warn";
      notify("Message published, but not routed.", "info");
    }
  });
  return form;
}

function deleteForm(vhost, name, path, ctx) {
  const id = "if-unused-" + Math.random().toString(36).slice(2);
  const unused = h("input", { type: "checkbox", name: "if-unused", id });
  return h("div", { class: "form" },
    h("span", { class: "checkbox" }, unused, h("label", { for: id }, " Only if unused (no bindings from it)")),
    button("Delete this exchange", async () => {
      if (!(await confirmed(`Delete the exchange "${name}"?`))) return;
      const done = await act(() => api.del(path, unused.checked ? { "if-unused": "true" } : undefined),
        `Exchange "${name}" deleted.`);
      if (done !== undefined) ctx.go("#/exchanges");
    }, { class: "danger", id: "delete-exchange" }));
}
