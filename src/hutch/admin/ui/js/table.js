// One table for every list: sortable headers, a name filter and pages.
//
// A paged table (queues, exchanges, connections, channels, vhosts) lets the API sort,
// filter and cut the page (?page=&page_size=&name=&use_regex=&sort=&sort_reverse=), so
// a broker with 10,000 queues sends the browser one page of rows.  Other tables get the
// whole (short) list and do the same in the browser.

import { h, fill, button, uid, keepFocus } from "./dom.js";
import { num } from "./format.js";

const PAGE_SIZES = [20, 100, 500]; // 500 is the API's largest page

export class Table {
  // opts: {name, columns: [{key, label, sort, render, numeric, title}], load, paged,
  //        empty, rowKey, filter: true, pageSize}
  // load(params) -> an envelope {items, page, page_count, filtered_count, total_count}
  // when paged, else a list.
  constructor(opts) {
    this.opts = opts;
    this.sort = opts.sort ?? null;
    this.reverse = false;
    this.page = 1;
    this.pageSize = Number(localStorage.getItem("hutch.pageSize." + opts.name)) || opts.pageSize || 100;
    this.filterText = "";
    this.regex = false;
    this.el = h("div", { class: "table-wrap", dataset: { table: opts.name } });
    this.controls = h("div", { class: "table-controls" });
    this.body = h("div", { class: "table-body" });
    this.pager = h("div", { class: "pager" });
    this.el.append(this.controls, this.body, this.pager);
    if (opts.filter !== false) this.buildFilter();
  }

  buildFilter() {
    const fid = uid("filter");
    const box = h("input", {
      type: "search", id: fid, name: "filter", placeholder: "Filter by name",
      autocomplete: "off", class: "filter",
    });
    let timer = null;
    box.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.filterText = box.value;
        this.page = 1;
        this.refresh();
      }, 250);
    });
    const rid = uid("regex");
    const regex = h("input", { type: "checkbox", id: rid, name: "regex" });
    regex.addEventListener("change", () => {
      this.regex = regex.checked;
      this.page = 1;
      this.refresh();
    });
    this.controls.append(
      h("label", { for: fid }, "Filter " + (this.opts.label || this.opts.name)),
      box,
      h("span", { class: "regex" }, regex, h("label", { for: rid }, "Regex")),
      (this.count = h("span", { class: "count", "aria-live": "polite" })),
    );
  }

  async refresh() {
    const o = this.opts;
    // Refreshes overlap (the timer, a click, the filter): only the newest answer is drawn.
    this.seq = (this.seq || 0) + 1;
    const mine = this.seq;
    let items;
    let info;
    try {
      if (o.paged) {
        const q = {
          page: this.page, page_size: this.pageSize, name: this.filterText,
          use_regex: this.regex ? "true" : "false", pagination: "true",
        };
        if (this.sort) {
          q.sort = this.sort;
          q.sort_reverse = this.reverse ? "true" : "false";
        }
        let env;
        try {
          env = await o.load(q);
        } catch (e) {
          // The page we were on emptied (queues deleted): go back to the first.
          if (e.error === "page_out_of_range" && this.page > 1) {
            this.page = 1;
            return this.refresh();
          }
          throw e;
        }
        items = env.items;
        info = env;
      } else {
        items = this.local(await o.load());
        info = this.cut(items);
        items = info.items;
      }
    } catch (e) {
      if (mine !== this.seq) return;
      fill(this.body, h("p", { class: "error", role: "alert" }, e.message || String(e)));
      return;
    }
    if (mine !== this.seq) return;
    this.render(items, info);
  }

  // Client-side filter and sort, as the API does it (case-insensitive substring or regex).
  local(items) {
    let out = items;
    if (this.filterText) {
      let test;
      if (this.regex) {
        try {
          const re = new RegExp(this.filterText, "i");
          test = (s) => re.test(s);
        } catch (e) {
          test = () => false;
        }
      } else {
        const needle = this.filterText.toLowerCase();
        test = (s) => s.toLowerCase().includes(needle);
      }
      const key = this.opts.filterKey || ((r) => r.name ?? "");
      out = out.filter((r) => test(String(key(r))));
    }
    if (this.sort) {
      const path = this.sort.split(".");
      const val = (r) => path.reduce((v, k) => (v && typeof v === "object" ? v[k] : undefined), r);
      out = [...out].sort((a, b) => {
        const x = val(a);
        const y = val(b);
        if (typeof x === "number" && typeof y === "number") return x - y;
        return String(x ?? "").localeCompare(String(y ?? ""));
      });
      if (this.reverse) out.reverse();
    }
    this.totalCount = items.length;
    return out;
  }

  cut(items) {
    const pages = Math.max(1, Math.ceil(items.length / this.pageSize));
    if (this.page > pages) this.page = pages;
    const start = (this.page - 1) * this.pageSize;
    return {
      items: items.slice(start, start + this.pageSize), page: this.page, page_count: pages,
      filtered_count: items.length, total_count: this.totalCount,
    };
  }

  header(col) {
    if (!col.sort) return h("th", { scope: "col", title: col.title }, col.label);
    const active = this.sort === col.sort;
    const dir = active ? (this.reverse ? "descending" : "ascending") : "none";
    return h("th", { scope: "col", "aria-sort": dir, title: col.title, class: col.numeric ? "num" : "" },
      button(col.label + (active ? (this.reverse ? " ▼" : " ▲") : ""), () => {
        if (this.sort === col.sort) this.reverse = !this.reverse;
        else {
          this.sort = col.sort;
          this.reverse = Boolean(col.numeric); // biggest first for counts and rates
        }
        this.refresh();
      }, { class: "sort", dataset: { sort: col.sort } }));
  }

  render(items, info) {
    const o = this.opts;
    if (this.count) {
      const shown = info.filtered_count ?? items.length;
      const total = info.total_count ?? shown;
      const items = (n) => (n === 1 ? "item" : "items");
      this.count.textContent = shown === total ? `${num(total)} ${items(total)}`
        : `${num(shown)} of ${num(total)} ${items(total)}`;
    }
    const table = h("table", { class: "list", dataset: { table: o.name } },
      o.caption ? h("caption", {}, o.caption) : null,
      h("thead", {}, h("tr", {}, o.columns.map((c) => this.header(c)))),
      h("tbody", {},
        items.length === 0
          ? h("tr", {}, h("td", { colspan: o.columns.length, class: "empty" }, o.empty || "Nothing here"))
          : items.map((row) => h("tr", { dataset: { key: o.rowKey ? o.rowKey(row) : row.name } },
            o.columns.map((c) => h("td", { class: c.numeric ? "num" : "" },
              c.render ? c.render(row) : fieldOf(row, c.key)))))));
    // A refresh rebuilds rows, headers and pager: the keyboard focus stays where it was.
    keepFocus(this.el, () => {
      fill(this.body, table);
      this.renderPager(info);
    });
  }

  renderPager(info) {
    const pages = info.page_count || 1;
    const sizeId = uid("pagesize");
    const size = h("select", { id: sizeId, name: "page_size" },
      PAGE_SIZES.map((n) => h("option", { value: n, selected: n === this.pageSize }, String(n))));
    size.addEventListener("change", () => {
      this.pageSize = Number(size.value);
      localStorage.setItem("hutch.pageSize." + this.opts.name, String(this.pageSize));
      this.page = 1;
      this.refresh();
    });
    fill(this.pager,
      button("‹ Previous", () => { this.page -= 1; this.refresh(); },
        { disabled: this.page <= 1, class: "prev" }),
      h("span", { class: "page-of" }, `Page ${this.page} of ${pages}`),
      button("Next ›", () => { this.page += 1; this.refresh(); },
        { disabled: this.page >= pages, class: "next" }),
      h("label", { for: sizeId }, "Rows per page"), size);
  }
}

function fieldOf(row, key) {
  const v = key.split(".").reduce((x, k) => (x && typeof x === "object" ? x[k] : undefined), row);
  if (typeof v === "number") return num(v);
  return v === undefined || v === null ? "" : String(v);
}
