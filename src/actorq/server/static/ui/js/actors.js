// Actors by type, searched by key prefix, paged (GET /v1/actors), refreshed every 2 s.

import { actorTypes, get, post } from "./api.js";
import { changed, errorText, every, h, keyText, replace, section, table } from "./dom.js";

const PAGE = 50;

export function isVm(type) {
  const actions = (type && type.actions) || {};
  return ["list_sessions", "readdir", "read_file"].every((a) => a in actions);
}

export function actorsView(el, params) {
  let type = params.get("type") || "";
  let prefix = params.get("key") || "";
  let cursors = [null]; // the `after` of each page seen so far; the last one is shown
  let next = null;
  let types = {};

  const status = h("p", { class: "muted", id: "actors-status" });
  const tabs = h("div", { class: "tabs", id: "type-tabs" });
  const search = h("input", {
    type: "search",
    id: "key-search",
    placeholder: "key prefix, parts joined by /",
    value: prefix,
    "aria-label": "search by key prefix",
  });
  const list = h("div", { id: "actor-list" });
  const prev = h("button", { type: "button", id: "page-prev", disabled: true }, "← Previous");
  const nextBtn = h("button", { type: "button", id: "page-next", disabled: true }, "Next →");
  const pageNo = h("span", { class: "muted", id: "page-no" });

  const openForm = h(
    "form",
    { class: "row", id: "open-actor" },
    h("select", { id: "open-type", "aria-label": "actor type" }),
    h("input", { id: "open-key", placeholder: 'key, e.g. main or ["a","b"]', "aria-label": "key" }),
    h("button", { type: "submit" }, "Open"),
    h("span", { class: "error", id: "open-error" }),
  );

  replace(
    el,
    h("div", { class: "page-head" }, h("h1", {}, "Actors"), status),
    tabs,
    h(
      "section",
      { class: "card" },
      h("div", { class: "row toolbar" }, search, h("span", { class: "spacer" }), prev, pageNo, nextBtn),
      list,
    ),
    section("Open an existing actor by type and key", openForm),
  );

  const setHash = () => {
    const q = new URLSearchParams();
    if (type) q.set("type", type);
    if (prefix) q.set("key", prefix);
    const want = `#/actors${q.toString() ? "?" + q : ""}`;
    if (location.hash !== want) history.replaceState(null, "", want);
  };

  const renderTabs = () => {
    const names = ["", ...Object.keys(types).sort()];
    replace(
      tabs,
      names.map((n) =>
        h(
          "button",
          {
            type: "button",
            class: `tab ${n === type ? "active" : ""}`,
            dataset: { type: n },
            onclick: () => {
              type = n;
              cursors = [null];
              setHash();
              renderTabs();
              load();
            },
          },
          n || "all types",
          n && isVm(types[n]) ? h("span", { class: "badge vm" }, "VM") : null,
        ),
      ),
    );
    const sel = openForm.querySelector("#open-type");
    replace(sel, Object.keys(types).sort().map((n) => h("option", { value: n }, n)));
    if (type) sel.value = type;
  };

  const load = async () => {
    const after = cursors[cursors.length - 1];
    const [data, cluster] = await Promise.all([
      get("/v1/actors", { name: type, key_prefix: prefix, after, limit: PAGE }),
      get("/v1/cluster/nodes", { limit: 1000 }).catch(() => null),
    ]);
    // several nodes: which one runs each actor now (from each node's first 1000 actors)
    const owners = new Map();
    if (cluster && cluster.clustered) {
      for (const n of cluster.nodes) for (const id of n.actors) owners.set(id, n);
    }
    const clustered = Boolean(cluster && cluster.clustered);
    next = data.next_after || null;
    prev.disabled = cursors.length <= 1;
    nextBtn.disabled = !next;
    pageNo.textContent = `page ${cursors.length}`;
    status.textContent = `${data.actors.length} shown${prefix ? ` matching “${prefix}”` : ""}`;
    if (!changed(list, [data.actors, clustered ? [...owners.entries()].map(([k, n]) => [k, n.node]) : null])) return;
    const nodeCell = (a) => {
      const n = owners.get(a.actor_id);
      if (!n) return h("td", { class: "muted" }, "none");
      return h("td", {}, h("code", {}, n.node.slice(0, 8)), n.this_node ? h("span", { class: "badge" }, "this") : null);
    };
    const rows = data.actors.map((a) =>
      h(
        "tr",
        { dataset: { actorId: a.actor_id } },
        h("td", {}, h("a", { href: `#/actor/${encodeURIComponent(a.actor_id)}`, class: "key" }, keyText(a.key))),
        h("td", {}, a.name, isVm(types[a.name]) ? h("a", { class: "badge vm", href: `#/vm/${encodeURIComponent(a.actor_id)}` }, "VM") : null),
        h("td", {}, h("code", {}, a.actor_id)),
        h("td", {}, h("span", { class: `dot ${a.awake ? "on" : "off"}` }), a.awake ? "awake" : "asleep"),
        clustered ? nodeCell(a) : null,
      ),
    );
    const heads = ["Key", "Type", "Actor id", "Here", ...(clustered ? ["Runs on"] : [])];
    replace(list, table(heads, rows, { empty: "No actors.", cls: "actors" }));
  };

  let debounce = null;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      prefix = search.value;
      cursors = [null];
      setHash();
      load().catch((e) => (status.textContent = errorText(e)));
    }, 250);
  });
  prev.addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    load();
  });
  nextBtn.addEventListener("click", () => {
    if (next) cursors.push(next);
    load();
  });
  openForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = openForm.querySelector("#open-error");
    err.textContent = "";
    const raw = openForm.querySelector("#open-key").value.trim();
    let key;
    try {
      key = raw.startsWith("[") ? JSON.parse(raw) : raw.split("/").map((s) => s.trim());
      const a = await post("/v1/actors", { name: openForm.querySelector("#open-type").value, key, mode: "get" });
      location.hash = `#/actor/${encodeURIComponent(a.actor_id)}`;
    } catch (e) {
      err.textContent = errorText(e);
    }
  });

  let stop = () => {};
  actorTypes()
    .then((t) => {
      types = t;
      if (type && !(type in types)) type = "";
      renderTabs();
      stop = every(2000, load, (e) => (status.textContent = errorText(e)));
    })
    .catch((e) => (status.textContent = errorText(e)));
  return () => {
    clearTimeout(debounce);
    stop();
  };
}
