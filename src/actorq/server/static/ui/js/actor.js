// One actor: queues (live), pending and in-flight messages, dead letters (retry, delete), a
// result by message id, persisted state, its events (WebSocket), and forms to call an action
// and send a message.

import { actorPath, actorTypes, connect, del, get, openapiDocument, post, resolveRefs } from "./api.js";
import {
  age,
  changed,
  errorText,
  every,
  h,
  jsonBlock,
  keyText,
  now,
  parseJson,
  pretty,
  replace,
  section,
  table,
  when,
} from "./dom.js";
import { isVm } from "./actors.js";
import { History, legend, lineChart } from "./chart.js";

const COUNTS = ["pending", "delayed", "in_flight", "completed", "dead"];
const MAX_EVENTS = 500;

export function actorHeader(info, type, here) {
  const owner = info.owner ? `${info.owner.node}${info.owner.address ? ` (${info.owner.address})` : ""}` : null;
  return h(
    "div",
    { class: "page-head" },
    h("div", {}, h("a", { href: `#/actors?type=${encodeURIComponent(info.name)}`, class: "muted" }, `${info.name} /`)),
    h("h1", { id: "actor-key" }, keyText(info.key)),
    h(
      "p",
      { class: "muted" },
      h("code", {}, info.actor_id),
      " · ",
      h("span", { class: `dot ${info.awake ? "on" : "off"}` }),
      info.awake ? "awake here" : "asleep here",
      "owner" in info ? ` · owner: ${owner || "none"}` : "",
      here === "vm" || isVm(type) ? " · " : "",
      here === "vm"
        ? h("a", { href: `#/actor/${encodeURIComponent(info.actor_id)}` }, "queues, state and events")
        : isVm(type)
          ? h("a", { href: `#/vm/${encodeURIComponent(info.actor_id)}`, id: "to-vm" }, "agent VM: sessions, files, processes")
          : null,
    ),
  );
}

export function actorView(el, actorId) {
  const stops = [];
  const status = h("p", { class: "error", id: "actor-error" });
  replace(el, h("p", { class: "muted" }, "Loading…"), status);

  Promise.all([get(actorPath(actorId)), actorTypes(), openapiDocument()])
    .then(([info, types, doc]) => {
      const type = types[info.name] || { queues: {}, actions: {} };
      render(el, info, type, stops, doc);
    })
    .catch((e) => {
      replace(el, h("p", { class: "error", id: "actor-error" }, errorText(e)));
    });
  return () => stops.forEach((s) => s());
}

function render(el, info, type, stops, doc) {
  const id = info.actor_id;
  const errors = h("p", { class: "error", id: "actor-error" });
  const head = h("div", {}, actorHeader(info, type, "actor"));
  const queues = h("div", { id: "queues" });
  const msgTabs = h("div", { class: "tabs small" });
  const messages = h("div", { id: "messages" });
  const dead = h("div", { id: "dead-letters" });
  const state = h("pre", { id: "state", class: "json" }, "…");
  const events = h("ol", { id: "events", class: "events" });
  const wsStatus = h("span", { class: "status", id: "ws-status" }, "connecting");
  const charts = h("div", { class: "charts", id: "queue-charts" });
  const listen = h("button", { type: "button", class: "link", id: "ws-listen" }, "stop listening");
  let msgStatus = "pending";

  for (const [s, label] of [
    ["pending", "Pending"],
    ["in_flight", "In flight"],
  ]) {
    msgTabs.append(
      h(
        "button",
        {
          type: "button",
          class: `tab ${s === msgStatus ? "active" : ""}`,
          dataset: { status: s },
          onclick: (ev) => {
            msgStatus = s;
            for (const b of msgTabs.children) b.classList.toggle("active", b === ev.currentTarget);
            delete messages.dataset.rendered;
            refreshMessages();
          },
        },
        label,
      ),
    );
  }

  replace(
    el,
    head,
    errors,
    h(
      "div",
      { class: "grid" },
      section("Queues", queues),
      section("State", h("p", { class: "muted" }, "as last persisted"), state),
    ),
    section("Last 5 minutes (all queues, since this page opened)", charts),
    section("Messages", msgTabs, messages),
    section("Dead letters", dead),
    h("div", { class: "grid" }, sendForm(id, type, doc), actionForm(id, type, doc)),
    h(
      "div",
      { class: "grid" },
      resultForm(id),
      section(
        "Events",
        h(
          "p",
          { class: "row" },
          "WebSocket: ",
          wsStatus,
          h("span", { class: "spacer" }),
          listen,
          h("button", { type: "button", class: "link", onclick: () => replace(events) }, "clear"),
        ),
        h("p", { class: "muted small" }, "While the page listens, the actor stays awake (as for any connected client)."),
        events,
      ),
    ),
  );

  const fail = (e) => (errors.textContent = errorText(e));

  const history = new History(300);
  const refreshQueues = async () => {
    const data = await get(actorPath(id, "queues"));
    errors.textContent = "";
    const t = now();
    const sum = (k) => data.queues.reduce((a, q) => a + q[k], 0);
    for (const k of ["pending", "delayed", "in_flight", "completed", "dead"]) history.add(k, t, sum(k));
    const depth = [
      { name: "pending", points: history.points("pending") },
      { name: "in flight", points: history.points("in_flight") },
      { name: "delayed", points: history.points("delayed") },
      { name: "dead", points: history.points("dead"), color: "#c92a2a" },
    ];
    const done = [{ name: "completed per second", points: history.rate("completed"), color: "#2f9e44" }];
    replace(
      charts,
      h("div", { class: "chart-box" }, h("h3", {}, "Queue depth"), lineChart(depth, { now: t }), legend(depth)),
      h("div", { class: "chart-box" }, h("h3", {}, "Throughput"), lineChart(done, { now: t }), legend(done)),
    );
    if (!changed(queues, data.queues)) return;
    const rows = data.queues.map((q) =>
      h(
        "tr",
        { dataset: { queue: q.queue } },
        h("th", {}, q.queue),
        COUNTS.map((c) => h("td", { class: `num ${c} ${q[c] ? "nonzero" : ""}`, dataset: { count: c } }, q[c])),
        h("td", { class: "num muted" }, q.max_size),
      ),
    );
    replace(queues, table(["Queue", "Pending", "Delayed", "In flight", "Completed", "Dead", "Max"], rows, { empty: "No queues.", cls: "queues" }));
  };

  const refreshMessages = async () => {
    const data = await get(actorPath(id, "messages"), { status: msgStatus, limit: 100 });
    const t = now();
    const rows = data.messages.map((m) =>
      h(
        "tr",
        { dataset: { msgId: m.id } },
        h("td", { class: "num" }, m.id),
        h("td", {}, m.queue),
        h("td", { class: "num" }, m.attempt),
        h("td", { class: "num" }, age(t - m.created_at)),
        h("td", {}, m.available_at > t ? `in ${age(m.available_at - t)}` : "now"),
        h("td", { class: "body" }, jsonBlock(m.body)),
      ),
    );
    // re-rendered each second for the ages, unless a body is unfolded
    if (messages.querySelector("details[open]") && !changed(messages, data.messages.map((m) => m.id))) return;
    messages.dataset.rendered = JSON.stringify(data.messages.map((m) => m.id));
    replace(
      messages,
      table(["Id", "Queue", "Attempt", "Age", "Deliver", "Body"], rows, {
        empty: msgStatus === "pending" ? "No pending messages." : "No message in flight.",
        cls: "messages",
      }),
    );
  };

  const refreshDead = async () => {
    const data = await get(actorPath(id, "dead-letters"), { limit: 100 });
    if (!changed(dead, data.dead_letters)) return;
    const rows = data.dead_letters.map((d) =>
      h(
        "tr",
        { dataset: { msgId: d.id } },
        h("td", { class: "num" }, d.id),
        h("td", {}, d.queue),
        h("td", { class: "num" }, d.attempt),
        h("td", {}, when(d.failed_at)),
        h("td", { class: "error-text" }, d.error || "—"),
        h("td", { class: "body" }, jsonBlock(d.body)),
        h(
          "td",
          { class: "actions" },
          h("button", { type: "button", class: "retry", onclick: () => deadAction(d, "retry") }, "Retry"),
          h("button", { type: "button", class: "delete danger", onclick: () => deadAction(d, "delete") }, "Delete"),
        ),
      ),
    );
    replace(dead, table(["Id", "Queue", "Attempts", "Failed", "Error", "Body", ""], rows, { empty: "No dead letters.", cls: "dead" }));
  };

  const deadAction = async (d, what) => {
    const question =
      what === "retry"
        ? `Retry message ${d.id} on “${d.queue}”? It goes back to pending with the same id.`
        : `Delete dead letter ${d.id} on “${d.queue}” for good?`;
    if (!window.confirm(question)) return;
    try {
      if (what === "retry") await post(actorPath(id, "dead-letters", d.id, "retry"));
      else await del(actorPath(id, "dead-letters", d.id));
      delete dead.dataset.rendered;
      await Promise.all([refreshDead(), refreshQueues()]);
    } catch (e) {
      fail(e);
    }
  };

  const refreshState = async () => {
    const data = await get(actorPath(id, "state"));
    if (changed(state, data.state)) state.textContent = data.state === null ? "null (never saved)" : pretty(data.state);
  };

  stops.push(every(1000, refreshQueues, fail));
  stops.push(every(1000, refreshMessages, fail));
  stops.push(every(1000, refreshDead, fail));
  stops.push(every(1000, refreshState, fail));

  const onFrame = (frame) => {
      if (frame.type !== "event") return;
      const item = h(
        "li",
        { dataset: { event: frame.name } },
        h("span", { class: "muted time" }, new Date().toLocaleTimeString(undefined, { hour12: false })),
        h("strong", {}, frame.name),
        jsonBlock(frame.data, { fold: 200 }),
      );
      events.prepend(item);
      while (events.children.length > MAX_EVENTS) events.lastChild.remove();
  };
  const onStatus = (s, code) => {
    wsStatus.textContent = s === "closed" ? `closed (${code}), reconnecting` : s;
    wsStatus.className = `status ${s === "open" ? "ok" : s === "closed" ? "bad" : "warn"}`;
  };
  let conn = null;
  const start = () => {
    conn = connect(id, onFrame, onStatus);
    listen.textContent = "stop listening";
  };
  const stop = () => {
    if (conn) conn.close();
    conn = null;
    wsStatus.textContent = "not listening";
    wsStatus.className = "status";
    listen.textContent = "listen";
  };
  listen.addEventListener("click", () => (conn ? stop() : start()));
  start();
  stops.push(() => conn && conn.close());
}

// A queue's body schema from /openapi.json, references resolved; null when it publishes none.
function queueSchema(type, queue, doc) {
  const q = (type.queues || {})[queue];
  return q && q.body && Object.keys(q.body).length ? resolveRefs(q.body, doc) : null;
}

// A value of the schema's shape to show as a hint (not sent): each property with a value of its type.
function example(schema, depth = 0) {
  if (!schema || typeof schema !== "object" || depth > 4) return null;
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  const alt = schema.anyOf || schema.oneOf || schema.allOf;
  if (Array.isArray(alt) && alt.length) return example(alt.find((a) => a.type !== "null") || alt[0], depth + 1);
  const t = Array.isArray(schema.type) ? schema.type.find((x) => x !== "null") : schema.type;
  if (t === "object" || schema.properties) {
    const out = {};
    for (const [k, v] of Object.entries(schema.properties || {})) out[k] = example(v, depth + 1);
    return out;
  }
  if (t === "array") return schema.items ? [example(schema.items, depth + 1)] : [];
  if (t === "string") return "";
  if (t === "integer") return 0;
  if (t === "number") return 0.0;
  if (t === "boolean") return false;
  return null;
}

function sendForm(id, type, doc) {
  const names = Object.keys(type.queues || {});
  const select = h("select", { id: "send-queue", "aria-label": "queue" }, names.map((n) => h("option", { value: n }, n)));
  const schema = h("pre", { class: "json schema", id: "send-schema" });
  const body = h("textarea", { id: "send-body", rows: 5, spellcheck: "false", placeholder: '{"key": "value"}' });
  const delay = h("input", { id: "send-delay", type: "number", min: "0", step: "any", placeholder: "delay (s)" });
  const wait = h("input", { id: "send-wait", type: "checkbox" });
  const out = h("pre", { class: "json result", id: "send-result" });
  const showSchema = () => {
    const s = queueSchema(type, select.value, doc);
    schema.textContent = s ? pretty(s) : "No JSON schema published for this queue: any JSON body.";
    body.placeholder = s ? JSON.stringify(example(s)) : '{"key": "value"}';
  };
  select.addEventListener("change", showSchema);
  showSchema();
  const form = h(
    "form",
    { id: "send-form" },
    h("label", {}, "Queue ", select),
    h("details", { class: "schema-box" }, h("summary", {}, "Body schema"), schema),
    h("label", { class: "block" }, "Body (JSON)", body),
    h("div", { class: "row" }, delay, h("label", {}, wait, " wait for the result (10 s)"), h("span", { class: "spacer" }), h("button", { type: "submit", id: "send-submit" }, "Send")),
    out,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.className = "json result";
    out.textContent = "sending…";
    try {
      const req = { body: parseJson(body.value, "the body") ?? null };
      if (delay.value) req.delay = Number(delay.value);
      if (wait.checked) {
        req.wait = true;
        req.timeout = 10;
      }
      const r = await post(actorPath(id, "queues", select.value, "messages"), req);
      out.textContent = pretty(r);
    } catch (e) {
      out.className = "json result error";
      out.textContent = errorText(e) + (e.details ? "\n" + pretty(e.details) : "");
    }
  });
  return section("Send a message", names.length ? form : h("p", { class: "muted" }, "This actor type has no queues."));
}

function actionForm(id, type, doc) {
  const actions = type.actions || {};
  const names = Object.keys(actions).sort();
  const select = h("select", { id: "action-name", "aria-label": "action" }, names.map((n) => h("option", { value: n }, n)));
  const params = h("p", { class: "muted", id: "action-params" });
  const args = h("textarea", { id: "action-args", rows: 3, spellcheck: "false", value: "[]" });
  const kwargs = h("textarea", { id: "action-kwargs", rows: 2, spellcheck: "false", value: "{}" });
  const out = h("pre", { class: "json result", id: "action-result" });
  const argsSchema = h("pre", { class: "json schema", id: "action-schema" });
  const argsBox = h("details", { class: "schema-box" }, h("summary", {}, "Arguments schema"), argsSchema);
  const showParams = () => {
    const a = actions[select.value] || {};
    params.textContent = `${select.value}(${(a.params || []).join(", ")})`;
    argsBox.hidden = !a.args; // published by newer servers
    if (a.args) argsSchema.textContent = pretty(resolveRefs(a.args, doc));
  };
  select.addEventListener("change", showParams);
  showParams();
  const form = h(
    "form",
    { id: "action-form" },
    h("label", {}, "Action ", select),
    params,
    argsBox,
    h("label", { class: "block" }, "Arguments (JSON list)", args),
    h("label", { class: "block" }, "Keyword arguments (JSON object)", kwargs),
    h("div", { class: "row" }, h("span", { class: "spacer" }), h("button", { type: "submit", id: "action-submit" }, "Call")),
    out,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.className = "json result";
    out.textContent = "calling…";
    try {
      const a = parseJson(args.value, "the arguments") ?? [];
      const k = parseJson(kwargs.value, "the keyword arguments") ?? {};
      if (!Array.isArray(a)) throw new Error("the arguments must be a JSON list");
      if (typeof k !== "object" || Array.isArray(k) || k === null) throw new Error("the keyword arguments must be a JSON object");
      const r = await post(actorPath(id, "actions", select.value), { args: a, kwargs: k });
      out.textContent = pretty(r.result);
    } catch (e) {
      out.className = "json result error";
      out.textContent = errorText(e) + (e.details ? "\n" + pretty(e.details) : "");
    }
  });
  return section("Call an action", names.length ? form : h("p", { class: "muted" }, "This actor type has no actions."));
}

function resultForm(id) {
  const input = h("input", { id: "result-id", type: "number", min: "1", step: "1", placeholder: "message id", required: true });
  const out = h("pre", { class: "json result", id: "result-out" });
  const form = h("form", { id: "result-form", class: "row" }, input, h("button", { type: "submit" }, "Look up"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.className = "json result";
    try {
      out.textContent = pretty(await get(actorPath(id, "messages", input.value)));
    } catch (e) {
      out.className = "json result error";
      out.textContent = errorText(e);
    }
  });
  return section("Result of a message", form, out);
}
