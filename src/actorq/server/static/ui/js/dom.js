// Small DOM helpers. Everything the server sends is data: it goes into the page as text
// (textContent), never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

// A JSON value, shown whole when short, folded behind a summary when long.
export function jsonBlock(value, { fold = 160, cls = "" } = {}) {
  const text = value === undefined ? "" : pretty(value);
  const flat = value === undefined ? "" : JSON.stringify(value);
  if (flat.length <= fold) return h("code", { class: `json ${cls}` }, flat);
  return h(
    "details",
    { class: `json ${cls}` },
    h("summary", {}, flat.slice(0, fold) + "…"),
    h("pre", {}, text),
  );
}

export function age(seconds) {
  const s = Math.max(0, seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export const now = () => Date.now() / 1000;

export function when(ts) {
  if (ts === null || ts === undefined) return "—";
  const d = new Date(ts * 1000);
  return d.toLocaleString(undefined, { hour12: false });
}

export function keyText(key) {
  return key.length ? key.join(" / ") : "(empty key)";
}

// Run fn now and then every ms milliseconds after each run finishes, until stop() (a view's
// clean-up); errors go to onError and the polling goes on.
export function every(ms, fn, onError = (e) => console.error(e)) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      await fn();
    } catch (e) {
      if (!stopped) onError(e);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// Re-render only when the data changed (keeps buttons under the mouse and open <details>).
export function changed(el, data) {
  const text = JSON.stringify(data);
  if (el.dataset.rendered === text) return false;
  el.dataset.rendered = text;
  return true;
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

export function table(headers, rows, { empty = "Nothing here.", cls = "" } = {}) {
  if (!rows.length) return h("p", { class: "muted empty" }, empty);
  return h(
    "table",
    { class: cls },
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows),
  );
}

export function errorText(e) {
  return e && e.message ? e.message : String(e);
}

// Parse JSON typed by the user; throws a readable Error.
export function parseJson(text, what) {
  const t = text.trim();
  if (!t) return undefined;
  try {
    return JSON.parse(t);
  } catch (e) {
    throw new Error(`${what} is not JSON: ${e.message}`);
  }
}
