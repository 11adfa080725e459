// Numbers as RabbitMQ's UI shows them.

export function num(n) {
  if (n === undefined || n === null || n === "") return "";
  if (typeof n !== "number") return String(n);
  return n.toLocaleString("en-US");
}

export function rate(r) {
  if (r === undefined || r === null) return "";
  const v = Number(r);
  return (v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(v >= 10 ? 1 : 2)) + "/s";
}

// A *_details.rate, or "" when the field is missing (no statistics yet).
export function rateOf(stats, key) {
  const d = stats && stats[key + "_details"];
  return d && d.rate !== undefined ? rate(d.rate) : "";
}

export function bytes(b) {
  if (b === undefined || b === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(b);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return (i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)) + " " + units[i];
}

export function duration(ms) {
  if (ms === undefined || ms === null) return "";
  let s = Math.floor(Number(ms) / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hh = Math.floor(s / 3600);
  s -= hh * 3600;
  const mm = Math.floor(s / 60);
  s -= mm * 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${s}s`;
  return `${s}s`;
}

export function timestamp(ms) {
  if (!ms) return "";
  const d = new Date(Number(ms));
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function bool(b) {
  return b ? "yes" : "no";
}

// A vhost as RabbitMQ's UI writes it.
export function vhostName(v) {
  return v;
}

// Arguments or client properties as "key: value" lines.
export function kv(obj) {
  if (!obj || typeof obj !== "object") return "";
  return Object.entries(obj)
    .map(([k, v]) => k + ": " + (typeof v === "object" ? JSON.stringify(v) : String(v)))
    .join("\n");
}
