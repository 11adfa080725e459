// The UI's frame: log in, the navigation, the router and the refresh timer.
//
// Pages are addressed by the URL's fragment as in RabbitMQ's UI (#/queues/%2F/tasks):
// each segment is one percent-encoded name.  A page module (pages/*.js) exports
// render(root, params, ctx), which builds the page once and returns
// {refresh, dispose}; the timer calls refresh() every few seconds (5 s by default, as
// RabbitMQ; chosen in the header) and never while the tab is hidden, so forms a user
// is typing into are never rebuilt.

import * as api from "./api.js";
import { h, fill, field, input, notify, showError, select } from "./dom.js";

// route pattern -> [module, title, tags allowed (null: every management user)]
const ROUTES = [
  ["", "overview", "Overview", null],
  ["connections", "connections", "Connections", null],
  ["connections/:name", "connection", "Connection", null],
  ["channels", "channels", "Channels", null],
  ["channels/:name", "channel", "Channel", null],
  ["exchanges", "exchanges", "Exchanges", null],
  ["exchanges/:vhost/:name", "exchange", "Exchange", null],
  ["queues", "queues", "Queues", null],
  ["queues/:vhost/:name", "queue", "Queue", null],
  ["users", "users", "Users", ["administrator"]],
  ["users/:name", "user", "User", ["administrator"]],
  ["vhosts", "vhosts", "Virtual hosts", ["administrator"]],
  ["vhosts/:name", "vhost", "Virtual host", ["administrator"]],
  ["policies", "policies", "Policies", ["administrator", "policymaker"]],
  ["limits", "limits", "Limits", ["administrator"]],
  ["definitions", "definitions", "Definitions", ["administrator"]],
];

const NAV = [
  ["#/", "Overview", null],
  ["#/connections", "Connections", null],
  ["#/channels", "Channels", null],
  ["#/exchanges", "Exchanges", null],
  ["#/queues", "Queues", null],
  ["#/users", "Admin", ["administrator"]],
  ["#/policies", "Admin", ["policymaker"]],
];

const REFRESH_CHOICES = [["5", "every 5 s"], ["10", "every 10 s"], ["30", "every 30 s"], ["0", "off"]];

const ctx = {
  user: null,
  has(tags) {
    return !tags || tags.some((t) => this.user.tags.includes(t));
  },
  go(hash) {
    location.hash = hash;
  },
  // The refresh interval in seconds (0: off), kept across visits.
  get interval() {
    const v = localStorage.getItem("hutch.refresh");
    return v === null ? 5 : Number(v);
  },
};

let current = null; // {page, dispose}
let generation = 0;
let timer = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const parts = raw === "" ? [] : raw.split("/").map((s) => {
    try {
      return decodeURIComponent(s);
    } catch (e) {
      return s;
    }
  });
  for (const [pattern, module, title, tags] of ROUTES) {
    const want = pattern === "" ? [] : pattern.split("/");
    if (want.length !== parts.length) continue;
    const params = {};
    let ok = true;
    want.forEach((w, i) => {
      if (w.startsWith(":")) params[w.slice(1)] = parts[i];
      else if (w !== parts[i]) ok = false;
    });
    if (ok) return { module, title, tags, params };
  }
  return null;
}

async function route() {
  const gen = ++generation;
  if (!ctx.user) return; // logged out (or the session ended): the login form stays
  const main = document.getElementById("main");
  if (current && current.dispose) current.dispose();
  current = null;
  const found = parseHash();
  markNav();
  if (!found) {
    document.title = "Not found - Hutch";
    fill(main, h("h1", {}, "Not found"), h("p", {}, "There is no such page. ",
      h("a", { href: "#/" }, "Back to the overview")));
    return;
  }
  if (!ctx.has(found.tags)) {
    document.title = found.title + " - Hutch";
    fill(main, h("h1", {}, found.title), h("p", { class: "error", role: "alert" },
      "Your user's tags do not allow this page (it needs " + found.tags.join(" or ") + ")."));
    return;
  }
  document.title = found.title + " - Hutch";
  fill(main, h("p", { class: "loading" }, "Loading…"));
  try {
    const mod = await import("./pages/" + found.module + ".js");
    if (gen !== generation) return;
    const root = h("div", { class: "page", dataset: { page: found.module } });
    const page = await mod.render(root, found.params, ctx);
    if (gen !== generation || !ctx.user) {
      if (page && page.dispose) page.dispose();
      return;
    }
    fill(main, root);
    current = page || {};
  } catch (e) {
    if (gen !== generation || !ctx.user) return;
    fill(main, h("h1", {}, found.title), h("p", { class: "error", role: "alert" }, e.message || String(e)));
  }
}

// A failing refresh is reported once, not every 5 s; a page whose object is gone (404)
// says so and stops refreshing.
let lastRefreshError = null;

async function refresh() {
  if (document.hidden || !current || !current.refresh) return;
  const gen = generation;
  const page = current;
  try {
    await page.refresh();
    lastRefreshError = null;
  } catch (e) {
    if (gen !== generation || e.status === 401) return;
    if (e.status === 404) {
      page.refresh = null;
      showError(new Error("This object no longer exists (" + e.message + "). The page has stopped refreshing."));
      return;
    }
    if (e.message !== lastRefreshError) showError(e);
    lastRefreshError = e.message;
  }
}

function schedule() {
  clearInterval(timer);
  timer = null;
  const s = ctx.interval;
  if (s > 0) timer = setInterval(refresh, s * 1000);
}

function markNav() {
  const here = "#/" + (location.hash.replace(/^#\/?/, "").split("/")[0] || "");
  const adminPages = ["#/users", "#/vhosts", "#/policies", "#/limits", "#/definitions"];
  for (const a of document.querySelectorAll("#nav a")) {
    const target = a.getAttribute("href");
    const on = target === here || (a.dataset.group === "admin" && adminPages.includes(here));
    if (on) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function buildFrame() {
  const nav = document.getElementById("nav");
  // One "Admin" entry: Users for administrators, Policies for policymakers.
  const items = NAV.filter(([, , tags]) => ctx.has(tags))
    .filter((item, i, all) => item[1] !== "Admin" || all.findIndex((x) => x[1] === "Admin") === i);
  fill(nav, h("ul", {}, items.map(([href, label]) =>
    h("li", {}, h("a", { href, dataset: { group: label === "Admin" ? "admin" : "" } }, label)))));
  nav.hidden = false;
  const refreshSel = select("refresh", REFRESH_CHOICES, String(ctx.interval));
  refreshSel.id = "refresh-interval";
  refreshSel.addEventListener("change", () => {
    localStorage.setItem("hutch.refresh", refreshSel.value);
    schedule();
  });
  const session = document.getElementById("session");
  fill(session,
    h("span", { class: "who" }, "User ", h("strong", { id: "whoami" }, ctx.user.name),
      ctx.user.tags.length ? " (" + ctx.user.tags.join(", ") + ")" : ""),
    h("span", { class: "refresh" }, h("label", { for: "refresh-interval" }, "Refresh"), refreshSel),
    h("button", { type: "button", id: "logout", onclick: logout }, "Log out"));
  session.hidden = false;
}

function loginForm(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("session").hidden = true;
  const user = input({ name: "username", autocomplete: "username", required: true });
  const pass = input({ name: "password", type: "password", autocomplete: "current-password" });
  const error = h("p", { class: "error", role: "alert", id: "login-error" }, message || "");
  const form = h("form", { class: "login", id: "login" },
    h("h1", {}, "Log in to Hutch"),
    field("Username", user), field("Password", pass), error,
    h("button", { type: "submit" }, "Log in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    api.setCredentials(user.value, pass.value);
    try {
      await start();
    } catch (e) {
      api.clearCredentials();
      error.textContent = e.status === 401 ? "Login failed: " + (e.reason || e.message) : e.message;
      pass.value = "";
      pass.focus();
    }
  });
  fill(document.getElementById("main"), form);
  user.focus();
}

function logout() {
  ctx.user = null;
  api.clearCredentials();
  clearInterval(timer);
  if (current && current.dispose) current.dispose();
  current = null;
  loginForm("");
  notify("Logged out.", "ok");
}

async function start() {
  const me = await api.get("/api/whoami");
  ctx.user = { name: me.name, tags: Array.isArray(me.tags) ? me.tags : String(me.tags || "").split(",").filter(Boolean) };
  buildFrame();
  schedule();
  await route();
  api.get("/api/overview").then((o) => {
    document.getElementById("version").textContent =
      (o.product_name || "Hutch") + " " + (o.product_version || "") + " · RabbitMQ " + (o.rabbitmq_version || "");
  }).catch(() => {});
}

api.whenUnauthorised((e) => {
  if (!ctx.user) return;
  ctx.user = null;
  api.clearCredentials();
  clearInterval(timer);
  loginForm("Your session ended: " + (e.reason || e.message));
});

window.addEventListener("hashchange", () => {
  if (ctx.user) route();
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh(); // catch up at once when the tab comes back
});

if (api.hasCredentials()) {
  start().catch((e) => {
    api.clearCredentials();
    loginForm(e.status === 401 ? "" : e.message);
  });
} else {
  loginForm("");
}
