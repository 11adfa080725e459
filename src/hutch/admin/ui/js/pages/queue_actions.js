// The queue page's actions, as RabbitMQ's: get messages (with their properties and
// headers, x-death included), publish a message to the queue, move its messages to
// another queue (a one-shot dynamic shovel), delete and purge.  Every message field is
// the sender's: it goes into the page as text only.

import * as api from "../api.js";
import { h, fill, section, facts, field, input, select, button, act, confirmed, notify, showError } from "../dom.js";
import { ArgsEditor } from "../widgets.js";
import { num, timestamp } from "../format.js";

// A header or argument value as text and tables: a list of tables (x-death) becomes a
// table with one row per entry, a table becomes key/value facts, the rest plain text.
export function valueView(v) {
  if (Array.isArray(v)) {
    if (v.length && v.every((x) => x && typeof x === "object" && !Array.isArray(x))) {
      const keys = [...new Set(v.flatMap((x) => Object.keys(x)))];
      return h("table", { class: "list nested" },
        h("thead", {}, h("tr", {}, keys.map((k) => h("th", { scope: "col" }, k)))),
        h("tbody", {}, v.map((x) => h("tr", {}, keys.map((k) => h("td", {},
          // x-death's "time" is an AMQP timestamp (seconds): the date too.
          k === "time" && typeof x[k] === "number" ? `${x[k]} (${timestamp(x[k] * 1000)})` : valueView(x[k])))))));
    }
    return v.map((x) => (typeof x === "object" && x !== null ? JSON.stringify(x) : String(x))).join(", ");
  }
  if (v && typeof v === "object") {
    const entries = Object.entries(v);
    if (!entries.length) return "";
    return facts(entries.map(([k, x]) => [k, valueView(x)]));
  }
  if (v === undefined || v === null) return "";
  return String(v);
}

const ACK_MODES = [
  ["ack_requeue_true", "Nack message requeue true"],
  ["ack_requeue_false", "Automatic ack"],
  ["reject_requeue_true", "Reject requeue true"],
  ["reject_requeue_false", "Reject requeue false"],
];

function messageView(m, i) {
  const props = { ...(m.properties || {}) };
  const headers = props.headers;
  delete props.headers;
  if (typeof props.timestamp === "number") props.timestamp = `${props.timestamp} (${timestamp(props.timestamp * 1000)})`;
  return h("article", { class: "message", dataset: { message: String(i + 1) } },
    h("h3", {}, `Message ${i + 1}`),
    facts([
      ["Exchange", m.exchange === "" ? "(AMQP default)" : m.exchange],
      ["Routing key", m.routing_key],
      ["Redelivered", m.redelivered ? "yes" : "no"],
      ["Properties", h("div", { class: "properties" }, valueView(props))],
      ["Headers", h("div", { class: "headers" }, headers && Object.keys(headers).length
        ? facts(Object.entries(headers).map(([k, v]) => [k, h("div", { class: "header", dataset: { header: k } }, valueView(v))]))
        : "")],
      ["Payload", h("div", {},
        h("p", { class: "help" }, `${num(m.payload_bytes)} bytes, encoding: ${m.payload_encoding}`),
        h("pre", { class: "payload" }, m.payload))],
    ]));
}

function getForm({ path }) {
  const ack = select("ackmode", ACK_MODES, "ack_requeue_true");
  const enc = select("encoding", [["auto", "Auto string / base64"], ["base64", "base64"]], "auto");
  const count = input({ name: "count", value: "1", inputmode: "numeric", size: 6 });
  const out = h("div", { class: "messages", "aria-live": "polite" });
  const warn = h("p", { class: "help" },
    "Getting messages from a queue is a destructive action: with \"Automatic ack\" or " +
    "\"Reject requeue false\" they are gone from the queue.");
  const form = h("form", { class: "form", id: "get-messages" },
    field("Ack mode", ack), field("Encoding", enc), field("Messages", count),
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Get message(s)")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await act(async () => {
      const n = Number(count.value);
      if (!Number.isInteger(n) || n < 1) throw new Error(`"Messages" must be a whole number of 1 or more, not "${count.value}".`);
      const list = await api.post(path + "/get",
        { count: n, ackmode: ack.value, encoding: enc.value, truncate: 50000 });
      if (!list.length) {
        fill(out, h("p", { class: "empty" }, "Queue is empty"));
        return;
      }
      const remaining = list[list.length - 1].message_count;
      fill(out, h("p", {}, `The server reported ${num(remaining)} message${remaining === 1 ? "" : "s"} remaining.`),
        list.map(messageView));
    });
  });
  return [warn, form, out];
}

function publishForm({ vhost, name, reload }) {
  const mode = select("delivery_mode", [["1", "1 - Non-persistent"], ["2", "2 - Persistent"]], "1");
  const headers = new ArgsEditor("Headers");
  const props = new ArgsEditor("Properties", { types: ["string", "number"] });
  const payload = h("textarea", { name: "payload", rows: 5 });
  const enc = select("payload_encoding", [["string", "String (default)"], ["base64", "Base64"]], "string");
  const result = h("p", { class: "publish-result", role: "status" });
  const form = h("form", { class: "form", id: "publish-message" },
    h("p", {}, "Message will be published to the default exchange with routing key ",
      h("strong", {}, name), ", routing it to this queue."),
    field("Delivery mode", mode), headers.el, props.el,
    h("p", { class: "help" }, "Properties: content_type, content_encoding, priority, correlation_id, reply_to, " +
      "expiration, message_id, timestamp, type, user_id, app_id."),
    field("Payload", payload), field("Payload encoding", enc),
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Publish message")), result);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    result.textContent = "";
    try {
      const properties = { ...props.value(), delivery_mode: Number(mode.value) };
      const hs = headers.value();
      if (Object.keys(hs).length) properties.headers = hs;
      const r = await api.post(`/api/exchanges/${api.esc(vhost)}/amq.default/publish`, {
        properties, routing_key: name, payload: payload.value, payload_encoding: enc.value,
      });
      const text = r && r.routed ? "Message published." : "Message published, but not routed.";
      result.textContent = text;
      notify(text, r && r.routed ? "ok" : "info");
      reload().catch(() => {});
    } catch (e) {
      showError(e);
    }
  });
  return form;
}

function moveForm({ vhost, name, path, reload }) {
  const dest = input({ name: "dest-queue", required: true, autocomplete: "off" });
  const status = h("p", { class: "move-status", role: "status" });
  const shovel = "Move from " + name;
  const submit = h("button", { type: "submit", class: "primary" }, "Move messages");
  const form = h("form", { class: "form", id: "move-messages" },
    h("p", {}, "Move the messages of this queue to another queue of this virtual host (a one-shot shovel, " +
      "as RabbitMQ's \"Move messages\"; it ends when the messages there at the start have moved)."),
    field("Destination queue", dest),
    h("div", {}, submit), status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const target = dest.value;
    if (!target) {
      showError(new Error("Which queue should the messages go to? Give its name."));
      return;
    }
    const uri = "amqp:///" + api.esc(vhost);
    const value = {
      "src-uri": uri, "src-queue": name, "src-protocol": "amqp091", "src-prefetch-count": 1000,
      "src-delete-after": "queue-length", "dest-protocol": "amqp091", "dest-uri": uri,
      "dest-add-forward-headers": false, "ack-mode": "on-confirm", "dest-queue": target,
    };
    status.textContent = `Moving messages to "${target}"…`;
    submit.disabled = true; // one move at a time: the shovel's name is the queue's
    try {
      await api.put(`/api/parameters/shovel/${api.esc(vhost)}/${api.esc(shovel)}`,
        { component: "shovel", vhost, name: shovel, value });
      await watchMove(vhost, shovel, target, status, path);
      reload().catch(() => {});
    } catch (e) {
      status.textContent = "The move did not start: " + e.message;
      showError(e);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// The shovel's status, or null once it is gone.  /api/shovels needs the monitoring tag;
// a policymaker who may start a move sees only whether its parameter is still there.
async function shovelStatus(vhost, shovel) {
  try {
    const list = await api.get("/api/shovels/" + api.esc(vhost));
    return (list || []).find((x) => x.name === shovel) || null;
  } catch (e) {
    if (e.status !== 401 && e.status !== 403) throw e; // "not_authorised": not a monitor
  }
  try {
    await api.get(`/api/parameters/shovel/${api.esc(vhost)}/${api.esc(shovel)}`);
    return { state: "running" };
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

// Follow the shovel until it is gone (a one-shot shovel deletes itself when done),
// with this queue's count as the progress.
async function watchMove(vhost, shovel, target, status, path) {
  const deadline = Date.now() + 300000;
  while (Date.now() < deadline) {
    let s;
    try {
      s = await shovelStatus(vhost, shovel);
    } catch (e) {
      status.textContent = "Move started; its progress is unknown: " + e.message;
      return;
    }
    if (s && s.state === "terminated" && s.reason) {
      status.textContent = `The move to "${target}" stopped: ${typeof s.reason === "string" ? s.reason : JSON.stringify(s.reason)}`;
      showError(new Error(status.textContent));
      return;
    }
    if (!s || s.state === "terminated") {
      status.textContent = `Messages moved to "${target}".`;
      notify(status.textContent, "ok");
      return;
    }
    const left = await api.get(path, { columns: "messages" }).then((q) => q.messages).catch(() => undefined);
    status.textContent = `Moving messages to "${target}": ${s.state || "running"}` +
      (left !== undefined ? `, ${num(left)} left in this queue` : "") + "…";
    await new Promise((r) => setTimeout(r, 500));
  }
  status.textContent = `The move to "${target}" is still running; see the queue's counts.`;
}

function deleteForm({ path, name, ctx }) {
  const ifEmpty = h("input", { type: "checkbox", name: "if-empty", id: "delete-if-empty" });
  const ifUnused = h("input", { type: "checkbox", name: "if-unused", id: "delete-if-unused" });
  const form = h("form", { class: "form", id: "delete-queue" },
    h("span", {}, ifEmpty, h("label", { for: "delete-if-empty" }, " Only if empty")),
    h("span", {}, ifUnused, h("label", { for: "delete-if-unused" }, " Only if unused (no consumers)")),
    h("div", {}, h("button", { type: "submit", class: "danger" }, "Delete queue")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!(await confirmed(`Delete queue "${name}"? Its messages are lost.`))) return;
    const q = {};
    if (ifEmpty.checked) q["if-empty"] = "true";
    if (ifUnused.checked) q["if-unused"] = "true";
    const ok = await act(async () => {
      await api.del(path, q);
      return true;
    }, `Queue "${name}" deleted.`);
    if (ok) ctx.go("#/queues");
  });
  return form;
}

function purgeForm({ path, name, reload }) {
  return h("div", {}, button("Purge messages", async () => {
    if (!(await confirmed(`Purge queue "${name}"? Its ready messages are deleted.`))) return;
    await act(async () => {
      await api.del(path + "/contents");
      await reload();
    }, "Queue purged.");
  }, { class: "danger", id: "purge-queue" }));
}

export function actionSections(opts) {
  return [
    section("Publish message", publishForm(opts), { open: false, id: "publish" }),
    section("Get messages", getForm(opts), { open: false, id: "get" }),
    // As RabbitMQ's queue page: only users who may create shovel parameters see it.
    opts.ctx.has(["administrator", "policymaker"])
      ? section("Move messages", moveForm(opts), { open: false, id: "move" }) : null,
    section("Delete", deleteForm(opts), { open: false, id: "delete" }),
    section("Purge", purgeForm(opts), { open: false, id: "purge" }),
  ].filter(Boolean);
}
