// The Prometheus text format (what GET /metrics serves), parsed; and small SVG line charts of
// the last minutes, drawn from samples the page keeps itself.

// "name{a="x",b="y"} 12.5 [timestamp]" lines -> [{name, labels, value}]; comments skipped.
export function parseMetrics(text) {
  const out = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|Inf|NaN))(\s+-?\d+)?$/);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    const value = m[4] === "+Inf" || m[4] === "Inf" ? Infinity : m[4] === "-Inf" ? -Infinity : Number(m[4]);
    out.push({ name: m[1], labels, value });
  }
  return out;
}

// The sum of a metric's samples (over all label sets), or null when absent.
export function metricValue(samples, name, labels = {}) {
  let total = null;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
    total = (total || 0) + s.value;
  }
  return total;
}

// A ring of [time, value] points per series, kept for `span` seconds.
export class History {
  constructor(span = 300) {
    this.span = span;
    this.series = new Map();
  }
  add(name, t, value) {
    if (value === null || value === undefined || Number.isNaN(value)) return;
    if (!this.series.has(name)) this.series.set(name, []);
    const pts = this.series.get(name);
    pts.push([t, value]);
    while (pts.length && pts[0][0] < t - this.span) pts.shift();
  }
  // per-second rate of a counter series, point to point (a counter reset counts as 0)
  rate(name) {
    const pts = this.series.get(name) || [];
    const out = [];
    for (let i = 1; i < pts.length; i++) {
      const dt = pts[i][0] - pts[i - 1][0];
      const dv = pts[i][1] - pts[i - 1][1];
      if (dt > 0) out.push([pts[i][0], dv >= 0 ? dv / dt : 0]);
    }
    return out;
  }
  points(name) {
    return this.series.get(name) || [];
  }
}

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#3b5bdb", "#e8590c", "#2f9e44", "#c92a2a", "#7048e8", "#0c8599"];

function el(tag, attrs = {}, text = null) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  return e;
}

function fmt(v) {
  if (v === 0) return "0";
  if (Number.isInteger(v)) return Math.abs(v) >= 10000 ? `${(v / 1000).toFixed(0)}k` : String(v);
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (Math.abs(v) >= 10) return v.toFixed(0);
  return v.toFixed(v < 1 ? 2 : 1);
}

// 1, 2, 2.5 or 5 times a power of ten, at least v (and at least 1)
function niceMax(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// series: [{name, points: [[t, v]...]}]; the x axis runs from the first sample (at least 1 min,
// at most `span` seconds ago) to now.
export function lineChart(series, { span = 300, height = 140, width = 460, now = Date.now() / 1000 } = {}) {
  const pad = { l: 36, r: 8, t: 8, b: 18 };
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" });
  const first = Math.min(now, ...series.flatMap((s) => s.points.map((p) => p[0])));
  const shown = Math.min(span, Math.max(60, now - first));
  const all = series.flatMap((s) => s.points.filter((p) => p[0] >= now - shown).map((p) => p[1]));
  const max = niceMax(Math.max(0, ...all));
  const x = (t) => pad.l + ((t - (now - shown)) / shown) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / max) * (height - pad.t - pad.b);
  svg.append(el("line", { class: "axis", x1: pad.l, y1: y(0), x2: width - pad.r, y2: y(0) }));
  svg.append(el("line", { class: "axis", x1: pad.l, y1: pad.t, x2: pad.l, y2: y(0) }));
  for (const v of [max / 2, max]) {
    svg.append(el("line", { class: "axis", x1: pad.l, y1: y(v), x2: width - pad.r, y2: y(v), "stroke-dasharray": "2 3" }));
    svg.append(el("text", { x: pad.l - 4, y: y(v) + 3, "text-anchor": "end" }, fmt(v)));
  }
  svg.append(el("text", { x: pad.l - 4, y: y(0) + 3, "text-anchor": "end" }, "0"));
  const ago = shown >= 120 ? `−${Math.round(shown / 60)} min` : `−${Math.round(shown)} s`;
  svg.append(el("text", { x: pad.l, y: height - 4 }, ago));
  svg.append(el("text", { x: width - pad.r, y: height - 4, "text-anchor": "end" }, "now"));
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p[0] >= now - shown);
    if (!pts.length) return;
    const d = pts.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    svg.append(el("path", { class: "line", d, stroke: s.color || COLORS[i % COLORS.length], "data-series": s.name }));
  });
  return svg;
}

export function legend(series) {
  const div = document.createElement("div");
  div.className = "legend";
  series.forEach((s, i) => {
    const span = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color || COLORS[i % COLORS.length];
    const last = s.points.length ? s.points[s.points.length - 1][1] : null;
    span.append(swatch, `${s.name}${last === null ? "" : `: ${fmt(last)}`}`);
    div.append(span);
  });
  return div;
}
