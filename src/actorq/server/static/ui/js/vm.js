// An agent VM (an actor type built with agent_os): its sessions with the transcript streaming
// live from the WebSocket's session events, a file browser of /home/user, its processes and its
// cron jobs. Everything goes through the VM's actions (POST .../actions/<name>).

import { actorPath, actorTypes, connect, get, post } from "./api.js";
import { changed, errorText, every, h, jsonBlock, pretty, replace, section, table, when } from "./dom.js";
import { actorHeader } from "./actor.js";
import { isVm } from "./actors.js";

const HOME = "/home/user";
const MAX_TURNS = 2000;
const MAX_HISTORY = 500; // messages of a transcript file shown at most

export function vmView(el, actorId) {
  const stops = [];
  replace(el, h("p", { class: "muted" }, "Loading…"));
  Promise.all([get(actorPath(actorId)), actorTypes()])
    .then(([info, types]) => {
      const type = types[info.name] || {};
      if (!isVm(type)) {
        replace(el, actorHeader(info, type, "vm"), h("p", { class: "error" }, `${info.name} is not an agent VM type.`));
        return;
      }
      render(el, info, type, stops);
    })
    .catch((e) => replace(el, h("p", { class: "error", id: "actor-error" }, errorText(e))));
  return () => stops.forEach((s) => s());
}

function render(el, info, type, stops) {
  const id = info.actor_id;
  const call = async (name, args = [], kwargs = {}) =>
    (await post(actorPath(id, "actions", name), { args, kwargs })).result;
  const errors = h("p", { class: "error", id: "vm-error" });
  const fail = (e) => (errors.textContent = errorText(e));

  const panes = {
    sessions: sessionsPane(call, fail, stops),
    files: filesPane(call, fail),
    processes: processesPane(call, fail, stops),
    cron: cronPane(call, fail, stops),
  };
  const perms = permissionsPane(call, fail, stops);
  const usage = usagePane(call, stops);
  const body = h("div", { id: "vm-pane" });
  const tabs = h("div", { class: "tabs", id: "vm-tabs" });
  const show = (name) => {
    for (const b of tabs.children) b.classList.toggle("active", b.dataset.pane === name);
    replace(body, panes[name].el);
    panes[name].shown();
  };
  for (const [name, label] of [
    ["sessions", "Sessions"],
    ["files", "Files"],
    ["processes", "Processes"],
    ["cron", "Cron jobs"],
  ]) {
    tabs.append(h("button", { type: "button", class: "tab", dataset: { pane: name }, onclick: () => show(name) }, label));
  }
  replace(el, actorHeader(info, type, "vm"), errors, usage.el, perms.el, tabs, body);
  show("sessions");

  const wsStatus = panes.sessions.wsStatus;
  const conn = connect(
    id,
    (frame) => {
      if (frame.type !== "event") return;
      panes.sessions.event(frame.name, frame.data);
      if (frame.name === "process_exit" || frame.name === "process_output") panes.processes.event(frame.name, frame.data);
      if (frame.name === "permission_request" || frame.name === "permission_resolved") perms.poke();
    },
    (s, code) => {
      if (s === "open") {
        panes.sessions.connected();
        perms.poke();
      }
      wsStatus.textContent = s === "closed" ? `closed (${code}), reconnecting` : s;
      wsStatus.className = `status ${s === "open" ? "ok" : s === "closed" ? "bad" : "warn"}`;
    },
  );
  stops.push(() => conn.close());
}

// -- permission requests -------------------------------------------------------------------------
// The tool calls the VM's policy holds for an answer (list_permission_requests), each with Allow
// and Deny (respond_permission); refreshed on the permission_request / permission_resolved events.
function permissionsPane(call, fail, stops) {
  const list = h("div", { id: "permission-list" });
  const el = h("section", { id: "permissions", hidden: true }, h("h2", {}, "Waiting for permission"), list);
  const answer = async (r, verdict) => {
    try {
      await call("respond_permission", [r.session_id, r.request_id, verdict]);
    } catch (e) {
      fail(e);
    }
    await refresh().catch(fail);
  };
  const refresh = async () => {
    const pending = (await call("list_permission_requests")).filter((r) => r.status === "pending");
    el.hidden = !pending.length;
    if (!changed(list, pending)) return;
    const rows = pending.map((r) =>
      h(
        "tr",
        { dataset: { request: r.request_id } },
        h("td", {}, h("strong", {}, r.tool), h("br"), h("span", { class: "muted" }, r.kind)),
        h(
          "td",
          { class: "body" },
          r.title ? h("div", {}, r.title) : null,
          r.command ? h("pre", { class: "command" }, r.command) : null,
          r.paths && r.paths.length ? h("div", { class: "paths" }, r.paths.map((x) => h("code", {}, x, " "))) : null,
          r.hosts && r.hosts.length ? h("div", { class: "hosts" }, r.hosts.map((x) => h("code", {}, x, " "))) : null,
        ),
        h("td", {}, h("code", { class: "muted" }, r.session_id)),
        h("td", {}, when(r.created_at), h("br"), h("span", { class: "muted" }, `expires ${when(r.expires_at)}`)),
        h(
          "td",
          { class: "actions" },
          h("button", { type: "button", class: "allow", onclick: () => answer(r, "allow") }, "Allow"),
          " ",
          h("button", { type: "button", class: "danger deny", onclick: () => answer(r, "deny") }, "Deny"),
        ),
      ),
    );
    replace(list, table(["Tool", "Asks for", "Session", "Asked", ""], rows, { cls: "permissions" }));
  };
  const stop = every(5000, refresh, fail);
  stops.push(() => stop());
  return { el, poke: () => refresh().catch(fail) };
}

// -- limits and usage ------------------------------------------------------------------------------
// What the VM type declares (memory, processes, disk, CPU) and what the VM uses now (get_usage).
function usagePane(call, stops) {
  const el = h("div", { class: "usage row", id: "vm-usage" });
  const fmt = (n) => (n === null || n === undefined ? "—" : n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
  const refresh = async () => {
    let u;
    try {
      u = await call("get_usage");
    } catch {
      el.hidden = true; // an older server without the action
      return;
    }
    if (!changed(el, u)) return;
    const item = (name, used, limit, f = fmt) =>
      h("span", { class: "usage-item", dataset: { usage: name } }, h("strong", {}, name), " ", f(used), " / ", limit === null || limit === undefined ? "no limit" : f(limit));
    const plain = (n) => (n === null || n === undefined ? "—" : String(n));
    replace(
      el,
      item("memory", u.memory_bytes, u.limits.memory_bytes),
      item("processes", u.pids, u.limits.pids, plain),
      item("disk", u.disk_bytes, u.limits.disk_bytes),
      h("span", { class: "usage-item", dataset: { usage: "cpu" } }, h("strong", {}, "cpu"), " ", u.limits.cpus === null || u.limits.cpus === undefined ? "no limit" : `${u.limits.cpus} ${u.limits.cpus === 1 ? "core" : "cores"}`),
    );
  };
  const stop = every(5000, refresh, () => {});
  stops.push(() => stop());
  return { el };
}

// -- sessions --------------------------------------------------------------------------------
function sessionsPane(call, fail, stops) {
  const list = h("div", { class: "session-list", id: "session-list" });
  const transcript = h("div", { class: "transcript", id: "transcript" });
  const title = h("h2", { id: "session-title" }, "Transcript");
  const wsStatus = h("span", { class: "status", id: "ws-status" }, "connecting");
  const promptText = h("textarea", { id: "prompt-text", rows: 3, placeholder: "a prompt for the agent" });
  const promptOut = h("pre", { class: "json result", id: "prompt-result" });
  const promptForm = h(
    "form",
    { id: "prompt-form" },
    promptText,
    h("div", { class: "row" }, h("span", { class: "spacer" }), h("button", { type: "submit", id: "prompt-submit" }, "Send prompt")),
    promptOut,
  );
  const byId = new Map(); // session id -> its live transcript element (kept while the page is open)
  const earlier = new Map(); // session id -> what its agent's transcript file held before that
  const hist = new Map(); // session id -> { last: seq handled, loaded, loading, buffer, first }
  let since = null; // when the WebSocket first opened: events from then on are live
  let selected = null;
  let sessions = [];

  const transcriptOf = (sid) => {
    if (!byId.has(sid)) byId.set(sid, h("div", { class: "turns", dataset: { session: sid } }));
    return byId.get(sid);
  };

  // The session's history from the VM's numbered events (get_session_events), page by page from
  // the last seq this page handled; live events that arrive meanwhile wait in a buffer, and every
  // event is applied once, in seq order: no gaps, no duplicates.
  const stateOf = (sid) => {
    if (!hist.has(sid)) hist.set(sid, { last: 0, loaded: false, loading: null, buffer: [], first: null, failed: false, dropped: false });
    return hist.get(sid);
  };
  const apply = (sid, name, data) => {
    const st = stateOf(sid);
    if (typeof data.seq === "number") {
      if (data.seq <= st.last) return;
      st.last = data.seq;
    }
    if (name === "session_event") renderEvent(transcriptOf(sid), data);
    else if (name === "permission_request" || name === "permission_resolved") renderPermission(transcriptOf(sid), name, data);
  };
  const catchUp = (sid) => {
    const st = stateOf(sid);
    if (st.loading || st.failed) return st.loading;
    st.loading = (async () => {
      try {
        for (;;) {
          const page = await call("get_session_events", [sid], { since: st.last, limit: 1000 });
          if (page.dropped && st.last === 0) st.dropped = true;
          if (st.first === null && page.events.length) st.first = page.events[0].time * 1000;
          for (const e of page.events) apply(sid, e.name, e.data);
          if (!page.more || !page.events.length) break;
        }
        st.loaded = true;
      } catch (e) {
        if (e && (e.status === 404 || e.status === 400)) {
          st.failed = true; // no history for it (an older server): the transcript file, then live
          st.loaded = true;
        } // else (the VM waking or going to sleep, a lost request): the next refresh tries again
      } finally {
        st.loading = null;
      }
      if (st.loaded) {
        const buffered = st.buffer.sort((a, b) => (a.data.seq || 0) - (b.data.seq || 0));
        st.buffer = [];
        for (const b of buffered) apply(sid, b.name, b.data);
        if (sid === selected) {
          const s = sessions.find((x) => x.session_id === sid);
          if (s) earlierOf(s);
          transcript.scrollTop = transcript.scrollHeight;
        }
      }
    })();
    return st.loading;
  };

  // The session's history before the page connected, from the agent's own transcript file
  // (pi's JSONL session file, read with read_file), once per session.
  const earlierOf = (s) => {
    let entry = earlier.get(s.session_id);
    if (!entry) {
      entry = { el: h("div", { class: "turns earlier", dataset: { session: s.session_id } }), tries: 0, busy: false, done: false };
      earlier.set(s.session_id, entry);
    }
    // until it holds something (pi writes the file at its first prompt), try again on later
    // refreshes, a few times: only what happened before the page connected is taken from it
    const st = hist.get(s.session_id);
    const wanted = st && (st.failed || st.dropped); // the history lacks the start: the file may hold it
    if (wanted && !entry.done && !entry.busy && entry.tries < 5 && s.transcript && s.agent_type === "pi") {
      entry.tries += 1;
      entry.busy = true;
      call("read_file", [s.transcript])
        .then((raw) => {
          const lines = new TextDecoder().decode(b64bytes(raw)).split("\n").filter(Boolean);
          const messages = [];
          for (const line of lines) {
            try {
              const e = JSON.parse(line);
              const before = st.first !== null ? st.first : since;
              if (e.type === "message" && e.message && (before === null || (e.message.timestamp || 0) < before)) messages.push(e.message);
            } catch {
              // a line being written: skip it
            }
          }
          if (!messages.length) return;
          entry.done = true;
          const shown = messages.slice(-MAX_HISTORY);
          const el = entry.el;
          el.append(h("p", { class: "muted history-note" }, `Earlier, from the agent's transcript file${shown.length < messages.length ? ` (last ${shown.length} of ${messages.length} messages)` : ""}:`));
          for (const m of shown) renderMessage(el, m);
          el.append(h("p", { class: "muted history-note" }, st.failed ? "Live from here on:" : "From the VM's event history on:"));
        })
        .catch(() => {}) // not written yet, or gone: nothing earlier to show
        .finally(() => (entry.busy = false));
    }
    return entry.el;
  };

  const select = (sid) => {
    selected = sid;
    const s = sessions.find((x) => x.session_id === sid);
    title.textContent = s ? `Transcript · ${s.agent_type} · ${sid}` : `Transcript · ${sid}`;
    replace(transcript, s ? earlierOf(s) : null, transcriptOf(sid));
    for (const b of list.querySelectorAll("button")) b.classList.toggle("active", b.dataset.session === sid);
  };

  const refresh = async () => {
    const data = await call("list_sessions");
    sessions = data;
    if (since !== null) for (const s of data) if (!stateOf(s.session_id).loaded) catchUp(s.session_id);
    const current = data.find((x) => x.session_id === selected);
    if (current) earlierOf(current); // its history, if it could not be read before
    if (!changed(list, data)) return;
    replace(
      list,
      data.length
        ? data.map((s) =>
            h(
              "button",
              { type: "button", dataset: { session: s.session_id }, onclick: () => select(s.session_id) },
              h("strong", {}, s.agent_type),
              " ",
              h("span", { class: `status ${s.status === "ready" ? "ok" : s.status === "closed" ? "" : "warn"}` }, s.status),
              h("br"),
              h("code", { class: "muted" }, s.session_id),
              h("br"),
              h("span", { class: "muted" }, `started ${when(s.created_at)} · ${s.cwd}`),
            ),
          )
        : h("p", { class: "muted" }, "No sessions yet."),
    );
    if (!selected && data.length) select(data[data.length - 1].session_id);
    else if (selected) select(selected);
  };

  promptForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!selected) return;
    const text = promptText.value.trim();
    if (!text) return;
    const sid = selected;
    add(transcriptOf(sid), "prompt", "prompt", textBlock(text)).dataset.pending = text;
    promptOut.className = "json result";
    promptOut.textContent = "the agent is working…";
    try {
      const r = await call("send_prompt", [sid, text]);
      promptOut.textContent = pretty(r);
    } catch (e) {
      promptOut.className = "json result error";
      promptOut.textContent = errorText(e);
    }
  });

  const el = h(
    "div",
    { class: "vm-layout" },
    section("Sessions", list),
    section("Transcript", h("div", { class: "row" }, title, h("span", { class: "spacer" }), "live: ", wsStatus), transcript, promptForm),
  );
  el.querySelector("section:last-child > h2").remove(); // the title above says which session

  let stop = null;
  return {
    el,
    wsStatus,
    connected() {
      if (since === null) since = Date.now();
      // (re)connected: fetch what each known session did since the last event handled
      for (const [sid, st] of hist) {
        if (st.failed) continue;
        st.loaded = false;
        catchUp(sid);
      }
      refresh().catch(fail);
    },
    shown() {
      if (!stop) {
        stop = every(3000, refresh, fail);
        stops.push(() => stop());
      }
    },
    event(name, data) {
      if (name === "session_created" || name === "session_closed") {
        delete list.dataset.rendered;
        refresh().catch(fail);
        return;
      }
      const known = name === "session_event" || name === "permission_request" || name === "permission_resolved";
      if (!known || !data || !data.session_id) return;
      const st = stateOf(data.session_id);
      if (!st.loaded || st.loading) {
        st.buffer.push({ name, data });
        if (st.buffer.length > MAX_TURNS * 5) st.buffer.shift(); // the history holds them anyway
        if (!st.loading && since !== null) catchUp(data.session_id);
      } else {
        apply(data.session_id, name, data);
      }
      if (!selected) refresh().catch(fail);
      if (data.session_id === selected) transcript.scrollTop = transcript.scrollHeight;
    },
  };
}

function add(turns, cls, label, ...content) {
  const t = h("div", { class: `turn ${cls}` }, h("div", { class: "label" }, label), ...content);
  turns.append(t);
  while (turns.children.length > MAX_TURNS) turns.firstChild.remove();
  return t;
}

function textBlock(text) {
  return h("div", { class: "text" }, text);
}

// A tool call's arguments: one line per argument, strings as the text they are.
function argsBlock(args) {
  if (!args || typeof args !== "object" || Array.isArray(args)) {
    return typeof args === "string" ? textBlock(args) : jsonBlock(args, { fold: 400 });
  }
  return h(
    "dl",
    { class: "args" },
    Object.entries(args).map(([k, v]) => [
      h("dt", {}, k),
      h("dd", {}, typeof v === "string" ? h("div", { class: "text" }, v) : jsonBlock(v, { fold: 400 })),
    ]),
  );
}

// One session event into its transcript: pi's compact events (agent text as deltas, tool calls
// with their arguments, tool results, the stop reason); other agents' events as they come.
function renderEvent(turns, ev) {
  const last = turns.lastElementChild;
  switch (ev.type) {
    case "message_update": {
      if (ev.update === "text_delta" || ev.update === "thinking_delta") {
        const cls = ev.update === "text_delta" ? "agent" : "agent thinking";
        if (last && last.className === `turn ${cls}` && !last.dataset.closed) {
          last.querySelector(".text").textContent += ev.delta || "";
        } else {
          add(turns, cls, ev.update === "text_delta" ? "agent" : "thinking", textBlock(ev.delta || ""));
        }
      } else if (ev.update === "toolcall_end") {
        add(turns, "tool", `tool call · ${ev.tool}`, argsBlock(ev.args)).dataset.toolCall = ev.tool_call_id || "";
      }
      return;
    }
    case "message_end": {
      if (last) last.dataset.closed = "1";
      if (ev.role === "user" && ev.text) {
        const mine = [...turns.querySelectorAll(".turn.prompt[data-pending]")].find((t) => t.dataset.pending === ev.text);
        if (mine) {
          delete mine.dataset.pending; // sent from this page: shown already, now in its place
          turns.append(mine);
        }
        else add(turns, "prompt", "prompt", textBlock(ev.text));
      }
      if (ev.role === "assistant") {
        if (ev.text && !(last && last.classList.contains("agent"))) add(turns, "agent", "agent", textBlock(ev.text));
        if (ev.error) add(turns, "error", "error", textBlock(ev.error));
        add(turns, "stop", "stop reason", textBlock(String(ev.stop_reason)));
      }
      return;
    }
    case "tool_execution_start":
      if (!turns.querySelector(`[data-tool-call="${CSS.escape(ev.tool_call_id || "")}"]`)) {
        add(turns, "tool", `tool call · ${ev.tool}`, argsBlock(ev.args));
      }
      return;
    case "tool_execution_end":
      add(turns, ev.is_error ? "tool-result error" : "tool-result", `tool result · ${ev.tool}${ev.is_error ? " (error)" : ""}`, textBlock(typeof ev.result === "string" ? ev.result : pretty(ev.result)));
      return;
    case "agent_start":
      add(turns, "stop", "agent started", textBlock(""));
      return;
    case "agent_end":
      add(turns, "stop", "agent finished", textBlock(""));
      return;
    case "permission":
      if (ev.request_id) return; // a held call's answer as pi saw it: shown from permission_resolved
      break;
    case "message_start":
    case "turn_start":
    case "turn_end":
    case "tool_execution_update":
      return;
  }
  // any other event (every case above that shows one returns): as it came
  add(turns, ev.error ? "error" : "stop", ev.type || "event", jsonBlock(Object.fromEntries(Object.entries(ev).filter(([k]) => k !== "session_id" && k !== "type")), { fold: 300 }));
}

// A held tool call in its session's transcript: asked, then how it was answered.
function renderPermission(turns, name, r) {
  const what = r.command || (r.paths || []).join(" ") || r.title || "";
  if (name === "permission_request") add(turns, "permission", `permission asked · ${r.tool}`, textBlock(what));
  else add(turns, r.status === "allowed" ? "permission" : "permission error", `permission ${r.status} · ${r.tool}`, textBlock(`${what}${r.answered_by ? ` (by ${r.answered_by})` : ""}`));
}

// One message of pi's transcript file: the user's prompt, the agent's text, thinking and tool
// calls with the stop reason, or a tool's result.
function renderMessage(turns, m) {
  const parts = Array.isArray(m.content) ? m.content : [{ type: "text", text: String(m.content ?? "") }];
  const text = parts.filter((p) => p.type === "text").map((p) => p.text).join("");
  if (m.role === "user") {
    add(turns, "prompt", "prompt", textBlock(text));
  } else if (m.role === "assistant") {
    for (const p of parts) {
      if (p.type === "text" && p.text) add(turns, "agent", "agent", textBlock(p.text));
      else if (p.type === "thinking" && p.thinking) add(turns, "agent thinking", "thinking", textBlock(p.thinking));
      else if (p.type === "toolCall") add(turns, "tool", `tool call · ${p.name}`, argsBlock(p.arguments));
    }
    if (m.errorMessage) add(turns, "error", "error", textBlock(m.errorMessage));
    if (m.stopReason) add(turns, "stop", "stop reason", textBlock(String(m.stopReason)));
  } else if (m.role === "toolResult") {
    add(turns, m.isError ? "tool-result error" : "tool-result", `tool result · ${m.toolName}${m.isError ? " (error)" : ""}`, textBlock(text));
  }
}

// -- files -------------------------------------------------------------------------------------
function b64bytes(value) {
  const b64 = value && typeof value === "object" && "$bytes" in value ? value.$bytes : null;
  if (b64 === null) return new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function filesPane(call, fail) {
  let path = HOME;
  const crumbs = h("div", { class: "crumbs", id: "file-path" });
  const list = h("div", { id: "file-list" });
  const viewer = h("div", { id: "file-view" });
  const refresh = h("button", { type: "button", onclick: () => load(path) }, "Refresh");

  const join = (dir, name) => (dir.endsWith("/") ? dir + name : `${dir}/${name}`);

  const showCrumbs = () => {
    const parts = path.slice(HOME.length).split("/").filter(Boolean);
    const links = [h("a", { href: "#", onclick: (e) => (e.preventDefault(), load(HOME)) }, HOME)];
    let at = HOME;
    for (const p of parts) {
      at = join(at, p);
      const target = at;
      links.push(" / ", h("a", { href: "#", onclick: (e) => (e.preventDefault(), load(target)) }, p));
    }
    replace(crumbs, links);
  };

  const load = async (dir) => {
    try {
      const names = (await call("readdir", [dir])).sort();
      path = dir;
      showCrumbs();
      const stats = await Promise.all(names.slice(0, 500).map((n) => call("stat", [join(dir, n)]).catch(() => null)));
      const rows = names.slice(0, 500).map((n, i) => {
        const s = stats[i];
        const full = join(dir, n);
        const isDir = s && s.is_directory;
        return h(
          "tr",
          { dataset: { name: n } },
          h("td", { class: "name" }, h("a", { href: "#", onclick: (e) => (e.preventDefault(), isDir ? load(full) : open(full, s)) }, isDir ? `${n}/` : n)),
          h("td", { class: "num" }, s && !isDir ? s.size : ""),
          h("td", {}, s ? when(s.mtime) : "?"),
          h("td", { class: "muted" }, s ? (s.mode & 0o7777).toString(8) : ""),
        );
      });
      replace(list, table(["Name", "Size", "Modified", "Mode"], rows, { empty: "Empty directory.", cls: "files" }));
      if (names.length > 500) list.append(h("p", { class: "muted" }, `${names.length - 500} more not shown.`));
    } catch (e) {
      fail(e);
    }
  };

  const open = async (full, s) => {
    try {
      const bytes = b64bytes(await call("read_file", [full]));
      let text = null;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch {
        text = null;
      }
      const name = full.split("/").pop();
      const download = h("button", { type: "button", id: "file-download" }, "Download");
      download.addEventListener("click", () => {
        const a = h("a", { href: URL.createObjectURL(new Blob([bytes])), download: name });
        document.body.append(a);
        a.click();
        setTimeout(() => (URL.revokeObjectURL(a.href), a.remove()), 1000);
      });
      replace(
        viewer,
        section(
          full,
          h("p", { class: "row muted" }, `${bytes.length} bytes · modified ${s ? when(s.mtime) : "?"}`, h("span", { class: "spacer" }), download),
          text === null ? h("p", { class: "muted" }, "Binary file: download it to look inside.") : h("pre", { id: "file-text" }, text.length > 200000 ? text.slice(0, 200000) + "\n… (cut: download for the rest)" : text),
        ),
      );
    } catch (e) {
      fail(e);
    }
  };

  const el = h("div", {}, section("Files", h("div", { class: "row" }, crumbs, h("span", { class: "spacer" }), refresh), list), viewer);
  let loaded = false;
  return {
    el,
    shown() {
      if (!loaded) load(HOME);
      loaded = true;
    },
  };
}

// -- processes ----------------------------------------------------------------------------------
function processesPane(call, fail, stops) {
  const list = h("div", { id: "process-list" });
  const refresh = async () => {
    const procs = await call("list_processes");
    if (!changed(list, procs)) return; // keeps the buttons in place while nothing changes
    const rows = procs
      .slice()
      .reverse()
      .map((p) =>
        h(
          "tr",
          { dataset: { pid: p.pid } },
          h("td", { class: "num" }, p.pid),
          h("td", {}, h("code", {}, [p.command, ...(p.args || [])].join(" "))),
          h("td", {}, p.running ? h("span", { class: "status ok" }, "running") : h("span", { class: "status" }, `exit ${p.exit_code}`)),
          h("td", {}, when(p.started_at)),
          h("td", { class: "body" }, p.stdout_tail ? h("pre", {}, p.stdout_tail) : ""),
          h(
            "td",
            { class: "actions" },
            h("button", { type: "button", class: "output", onclick: () => showOutput(p) }, "Output"),
            " ",
            p.running
              ? h(
                  "button",
                  {
                    type: "button",
                    class: "danger kill",
                    onclick: async () => {
                      if (!window.confirm(`Kill process ${p.pid} (${p.command})?`)) return;
                      try {
                        await call("kill_process", [p.pid]);
                        await refresh();
                      } catch (e) {
                        fail(e);
                      }
                    },
                  },
                  "Kill",
                )
              : null,
          ),
        ),
      );
    replace(list, table(["Pid", "Command", "State", "Started", "Output (tail)", ""], rows, { empty: "No processes.", cls: "processes" }));
  };
  // One process's whole output as the VM's history kept it (its process_output events, read
  // with get_events from the process's start on), then live from the WebSocket.
  const viewer = h("div", { id: "process-output" });
  let shownPid = null;
  let out = null;
  let lastSeq = 0;
  let loading = false;
  const pending = [];
  const append = (d) => {
    if (typeof d.seq === "number") {
      if (d.seq <= lastSeq) return;
      lastSeq = d.seq;
    }
    const chunk = h("span", { class: d.stream === "stderr" ? "stderr" : "" }, d.data || "");
    out.append(chunk);
  };
  const showOutput = async (p) => {
    shownPid = p.pid;
    lastSeq = 0;
    loading = true;
    pending.length = 0;
    out = h("pre", { id: "process-output-text", class: "output" });
    const note = h("p", { class: "muted" }, "Loading…");
    replace(viewer, section(`Output of ${p.pid} · ${[p.command, ...(p.args || [])].join(" ")}`, note, out));
    try {
      let dropped = false;
      for (;;) {
        const page = await call("get_events", [], { since: lastSeq, limit: 5000 });
        if (shownPid !== p.pid) return;
        dropped = dropped || page.dropped;
        for (const e of page.events) {
          if (e.name === "process_output" && e.data.pid === p.pid && e.time >= p.started_at - 1) append(e.data);
          else lastSeq = Math.max(lastSeq, e.seq);
        }
        if (!page.more || !page.events.length) break;
      }
      note.textContent = dropped ? "The VM's history no longer holds the oldest output; from what it kept:" : p.running ? "Live:" : "";
    } catch (e) {
      note.textContent = `No history (${errorText(e)}): the tail only.`;
      out.textContent = p.stdout_tail || "";
    } finally {
      loading = false;
      for (const d of pending.splice(0)) append(d);
    }
  };
  let stop = null;
  return {
    el: h("div", {}, section("Processes", list), viewer),
    shown() {
      if (!stop) {
        stop = every(2000, refresh, fail);
        stops.push(() => stop());
      }
    },
    event(name, data) {
      if (name === "process_output" && data && data.pid === shownPid && out) {
        if (loading) pending.push(data);
        else append(data);
      }
      if (stop) refresh().catch(fail);
    },
  };
}

// -- cron ---------------------------------------------------------------------------------------
function cronPane(call, fail, stops) {
  const list = h("div", { id: "cron-list" });
  const refresh = async () => {
    const jobs = await call("list_cron_jobs");
    if (!changed(list, jobs)) return;
    const rows = jobs.map((j) =>
      h(
        "tr",
        { dataset: { job: j.id } },
        h("td", {}, h("code", {}, j.id)),
        h("td", {}, h("code", {}, j.schedule)),
        h("td", { class: "body" }, jsonBlock(j.action)),
        h("td", {}, when(j.next_run)),
        h("td", {}, when(j.last_run)),
        h("td", { class: "num" }, j.runs),
        h("td", { class: "body" }, j.last_result === null || j.last_result === undefined ? "—" : jsonBlock(j.last_result)),
      ),
    );
    replace(list, table(["Id", "Schedule", "Action", "Next run", "Last run", "Runs", "Last result"], rows, { empty: "No cron jobs.", cls: "cron" }));
  };
  let stop = null;
  return {
    el: section("Cron jobs", list),
    shown() {
      if (!stop) {
        stop = every(5000, refresh, fail);
        stops.push(() => stop());
      }
    },
  };
}
