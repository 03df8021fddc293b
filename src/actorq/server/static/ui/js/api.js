// The inspector's only way to the server: the documented HTTP API and the actor WebSocket
// (docs/protocol.md), with the token a client would use. The token lives in sessionStorage
// (this tab only) and travels in the Authorization header, or, on a WebSocket (where a browser
// cannot set headers), as the subprotocol "actorq.token.<token>" beside "actorq".

const TOKEN_KEY = "actorq.token";

export class ApiError extends Error {
  constructor(status, body) {
    const err = body && typeof body === "object" && body.error ? body.error : null;
    super(err ? `${err.code}: ${err.message}` : `HTTP ${status}`);
    this.status = status;
    this.code = err ? err.code : null;
    this.details = err ? err.details : null;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// One prompt at a time, however many requests were refused meanwhile.
let asking = null;

function askToken(refused) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    const error = document.getElementById("token-error");
    error.hidden = !refused;
    error.textContent = refused ? "The server refused that token." : "";
    input.value = "";
    const done = (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      form.removeEventListener("submit", done);
      dialog.close();
      document.getElementById("forget-token").hidden = false;
      asking = null;
      resolve(value);
    };
    form.addEventListener("submit", done);
    dialog.addEventListener("cancel", (ev) => ev.preventDefault()); // nothing works without it
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
  return asking;
}

// The server's API lives beside /ui/ (under the same prefix when the app is mounted in another).
export const BASE = location.pathname.replace(/\/ui(\/.*)?$/, "");

function url(path, query) {
  const u = new URL(BASE + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== "") u.searchParams.set(k, String(v));
  }
  return u;
}

// A request to the API: JSON in, JSON out (text with {text: true}); a 401 asks for the token
// and tries again; any other error status throws ApiError.
export async function request(method, path, { query, body, text = false } = {}) {
  for (;;) {
    const sent = token();
    const headers = { Accept: text ? "text/plain" : "application/json" };
    if (sent) headers.Authorization = `Bearer ${sent}`;
    const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(url(path, query), init);
    if (r.status === 401) {
      if (token() === sent) await askToken(Boolean(sent));
      continue;
    }
    const raw = await r.text();
    if (text && r.ok) return raw;
    let data = null;
    try {
      data = raw ? JSON.parse(raw) : null;
    } catch {
      data = raw;
    }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }
}

export const get = (path, query) => request("GET", path, { query });
export const post = (path, body) => request("POST", path, { body });
export const del = (path) => request("DELETE", path);

export const actorPath = (id, ...parts) =>
  ["/v1/actors", encodeURIComponent(id), ...parts.map((p) => encodeURIComponent(String(p)))].join("/");

// The OpenAPI document, fetched once: the actor types, their queues' body schemas and actions.
let openapi = null;
export async function openapiDocument() {
  if (!openapi) openapi = get("/openapi.json").catch((e) => ((openapi = null), Promise.reject(e)));
  return openapi;
}

export async function actorTypes() {
  const doc = await openapiDocument();
  return doc["x-actorq-actors"] || {};
}

// A schema with its local references ("#/components/schemas/X", "#/$defs/X") replaced by what
// they point at, to show it whole; a reference deeper than `depth` or into itself stays as it is.
export function resolveRefs(schema, doc, depth = 8, seen = new Set()) {
  if (Array.isArray(schema)) return schema.map((s) => resolveRefs(s, doc, depth, seen));
  if (!schema || typeof schema !== "object") return schema;
  const ref = schema.$ref;
  if (typeof ref === "string" && ref.startsWith("#/") && depth > 0 && !seen.has(ref)) {
    let target = doc;
    for (const part of ref.slice(2).split("/")) target = target && typeof target === "object" ? target[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
    if (target !== undefined) {
      const { $ref, ...rest } = schema;
      const inner = resolveRefs(target, doc, depth - 1, new Set([...seen, ref]));
      return Object.keys(rest).length ? { ...inner, ...resolveRefs(rest, doc, depth, seen) } : inner;
    }
  }
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, resolveRefs(v, doc, depth, seen)]));
}

// A live connection to an actor's WebSocket: calls onFrame(frame) for each frame the server
// sends and onStatus("open" | "closed" | "connecting", detail); reconnects after a drop (1s,
// doubling to 10s). A refused handshake (wrong token: the browser sees only a failed connection)
// is told apart with one HTTP request, which asks for the token on a 401.
export function connect(actorId, onFrame, onStatus) {
  let ws = null;
  let stopped = false;
  let delay = 1000;
  let timer = null;
  const open = () => {
    if (stopped) return;
    const t = token();
    const protocols = t ? ["actorq", `actorq.token.${t}`] : ["actorq"];
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    onStatus("connecting");
    let opened = false;
    ws = new WebSocket(`${scheme}//${location.host}${BASE}${actorPath(actorId, "connect")}`, protocols);
    ws.onopen = () => {
      opened = true;
      delay = 1000;
      onStatus("open");
    };
    ws.onmessage = (ev) => {
      try {
        onFrame(JSON.parse(ev.data));
      } catch (e) {
        console.error("bad frame", e);
      }
    };
    ws.onclose = async (ev) => {
      ws = null;
      if (stopped) return;
      onStatus("closed", ev.code);
      if (ev.code === 4404) return; // unknown actor: nothing to wait for
      if (!opened) {
        try {
          await get(actorPath(actorId)); // a 401 here asks for the token
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) return;
        }
      }
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  return {
    close() {
      stopped = true;
      clearTimeout(timer);
      if (ws) ws.close(1000);
    },
    get socket() {
      return ws;
    },
  };
}
