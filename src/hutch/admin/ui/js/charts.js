// Charts over the last minutes, drawn by the vendored uPlot (static/vendor/uplot).
//
// The data is what RabbitMQ's API gives with ?lengths_age=&lengths_incr= (queue depths)
// and ?msg_rates_age=&msg_rates_incr= (message counters): for each field a list of
// {sample, timestamp} newest first.  Depths are drawn as they are; counters become
// rates, the change between two samples per second, as RabbitMQ's UI draws them.

import { h } from "./dom.js";

// How far back the charts look and how finely (seconds), as RabbitMQ's "Last ten minutes".
export const CHART_AGE = 600;
export const CHART_INCR = 5;

export function chartQuery() {
  return {
    lengths_age: CHART_AGE, lengths_incr: CHART_INCR,
    msg_rates_age: CHART_AGE, msg_rates_incr: CHART_INCR,
  };
}

const COLOURS = ["#c0392b", "#2471a3", "#229954", "#b9770e", "#7d3c98", "#17a589", "#5d6d7e"];

// Oldest first: [[t0, t1, ...], [v0, v1, ...]] from a samples list.
function series(samples) {
  const s = [...(samples || [])].sort((a, b) => a.timestamp - b.timestamp);
  return [s.map((x) => x.timestamp / 1000), s.map((x) => x.sample)];
}

// Per-second rates between consecutive counter samples (one point fewer).
function rates(samples) {
  const [ts, vs] = series(samples);
  const out = [[], []];
  for (let i = 1; i < ts.length; i += 1) {
    const dt = ts[i] - ts[i - 1];
    if (dt <= 0) continue;
    out[0].push(ts[i]);
    out[1].push(Math.max(0, (vs[i] - vs[i - 1]) / dt));
  }
  return out;
}

// Align several [xs, ys] on the union of their timestamps (uPlot wants one x axis).
function align(list) {
  const xs = [...new Set(list.flatMap(([x]) => x))].sort((a, b) => a - b);
  const cols = list.map(([x, y]) => {
    const m = new Map(x.map((t, i) => [t, y[i]]));
    return xs.map((t) => (m.has(t) ? m.get(t) : null));
  });
  return [xs, ...cols];
}

// A chart in its own <figure> with a caption.  kind: "lengths" or "rates".
// fields: [[label, key], ...]; for rates the key is a message_stats field (publish, ack...)
export class Chart {
  constructor(title, kind, fields, { height = 180 } = {}) {
    this.kind = kind;
    this.fields = fields;
    this.height = height;
    this.plotBox = h("div", { class: "plot" });
    this.summary = h("p", { class: "chart-summary" });
    this.el = h("figure", { class: "chart", dataset: { chart: title } },
      h("figcaption", {}, title), this.plotBox, this.summary);
    this.plot = null;
  }

  // obj: the API object (overview queue_totals/message_stats, or a queue).
  update(obj) {
    const data = this.data(obj);
    const has = data[0].length > 0;
    this.summary.textContent = this.describe(obj);
    if (typeof uPlot === "undefined") return; // the vendored script failed to load
    if (!has) {
      if (this.plot) this.plot.setData(data);
      return;
    }
    if (!this.plot) {
      const width = Math.max(300, this.plotBox.clientWidth || 600);
      this.plot = new uPlot({
        width, height: this.height,
        series: [{}, ...this.fields.map(([label], i) => ({
          label, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true,
          value: (u, v) => (v === null || v === undefined ? "–" : this.kind === "rates"
            ? v.toFixed(v >= 10 ? 0 : 1) + "/s" : String(Math.round(v))),
        }))],
        axes: [{}, { size: 60 }],
        scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
      }, data, this.plotBox);
      this.observer = new ResizeObserver(() => {
        const w = this.plotBox.clientWidth;
        if (w > 0 && this.plot) this.plot.setSize({ width: w, height: this.height });
      });
      this.observer.observe(this.plotBox);
    } else {
      this.plot.setData(data);
    }
  }

  data(obj) {
    const list = this.fields.map(([, key]) => {
      if (this.kind === "rates") {
        const d = obj && obj.message_stats && obj.message_stats[key + "_details"];
        return rates(d && d.samples);
      }
      const d = obj && obj[key + "_details"];
      return series(d && d.samples);
    });
    return align(list);
  }

  // The current values in words, for screen readers and for a glance.
  describe(obj) {
    return this.fields.map(([label, key]) => {
      if (this.kind === "rates") {
        const d = obj && obj.message_stats && obj.message_stats[key + "_details"];
        return `${label}: ${d ? Number(d.rate).toFixed(1) : "0.0"}/s`;
      }
      const v = obj ? obj[key] : undefined;
      return `${label}: ${v ?? 0}`;
    }).join(" · ");
  }

  dispose() {
    if (this.observer) this.observer.disconnect();
    if (this.plot) this.plot.destroy();
  }
}
