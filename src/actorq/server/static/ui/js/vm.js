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
  replace(el, actorHeader(info, type, "vm"), errors, tabs, body);
  show("sessions");

  const wsStatus = panes.sessions.wsStatus;
  const conn = connect(
    id,
    (frame) => {
      if (frame.type !== "event") return;
      panes.sessions.event(frame.name, frame.data);
      if (frame.name === "process_exit" || frame.name === "process_output") panes.processes.poke();
    },
    (s, code) => {
      if (s === "open") panes.sessions.connected();
      wsStatus.textContent = s === "closed" ? `closed (${code}), reconnecting` : s;
      wsStatus.className = `status ${s === "open" ? "ok" : s === "closed" ? "bad" : "warn"}`;
    },
  );
  stops.push(() => conn.close());
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
  let since = null; // when the WebSocket first opened: events from then on are live
  let selected = null;
  let sessions = [];

  const transcriptOf = (sid) => {
    if (!byId.has(sid)) byId.set(sid, h("div", { class: "turns", dataset: { session: sid } }));
    return byId.get(sid);
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
    if (!entry.done && !entry.busy && entry.tries < 5 && s.transcript && s.agent_type === "pi") {
      entry.tries += 1;
      entry.busy = true;
      call("read_file", [s.transcript])
        .then((raw) => {
          const lines = new TextDecoder().decode(b64bytes(raw)).split("\n").filter(Boolean);
          const messages = [];
          for (const line of lines) {
            try {
              const e = JSON.parse(line);
              if (e.type === "message" && e.message && (since === null || (e.message.timestamp || 0) < since)) messages.push(e.message);
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
          el.append(h("p", { class: "muted history-note" }, "Live from here on:"));
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
    add(transcriptOf(sid), "prompt", "prompt", text);
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
      if (name !== "session_event" || !data || !data.session_id) return;
      renderEvent(transcriptOf(data.session_id), data);
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
    case "message_start":
    case "turn_start":
    case "turn_end":
    case "tool_execution_update":
      return;
    default:
      add(turns, ev.error ? "error" : "stop", ev.type || "event", jsonBlock(Object.fromEntries(Object.entries(ev).filter(([k]) => k !== "session_id" && k !== "type")), { fold: 300 }));
  }
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
  let stop = null;
  return {
    el: section("Processes", list),
    shown() {
      if (!stop) {
        stop = every(2000, refresh, fail);
        stops.push(() => stop());
      }
    },
    poke() {
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
