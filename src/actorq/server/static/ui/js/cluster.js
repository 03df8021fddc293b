// The nodes serving the database and the actors each runs (GET /v1/cluster/nodes), and this
// node's throughput and queue depth over the last minutes from /metrics, scraped by the page
// every 2 s.

import { actorPath, get, request } from "./api.js";
import { History, legend, lineChart, metricValue, parseMetrics } from "./chart.js";
import { age, changed, errorText, every, h, keyText, now, replace, section, table } from "./dom.js";

const SPAN = 300; // seconds of history shown
const keys = new Map(); // actor id -> its key text, looked up once

async function keyOf(id) {
  if (!keys.has(id)) {
    keys.set(
      id,
      get(actorPath(id)).then(
        (a) => `${a.name} / ${keyText(a.key)}`,
        () => id,
      ),
    );
  }
  return keys.get(id);
}

export function clusterView(el) {
  const errors = h("p", { class: "error", id: "cluster-error" });
  const nodes = h("div", { id: "nodes" });
  const mode = h("p", { class: "muted", id: "cluster-mode" });
  const charts = h("div", { class: "charts", id: "charts" });
  replace(
    el,
    h("div", { class: "page-head" }, h("h1", {}, "Cluster"), mode),
    errors,
    section("Nodes", nodes),
    section("This node, last 5 minutes", h("p", { class: "muted" }, "from /metrics of the node serving this page, scraped every 2 s while it is open"), charts),
  );
  const fail = (e) => (errors.textContent = errorText(e));

  const refreshNodes = async () => {
    const data = await get("/v1/cluster/nodes", { limit: 50 });
    errors.textContent = "";
    mode.textContent = data.clustered
      ? `${data.nodes.length} node${data.nodes.length === 1 ? "" : "s"} sharing a PostgreSQL database`
      : "One process (SQLite): no cluster. Its actors are those awake in it.";
    const t = now();
    const view = data.nodes.map((n) => ({ ...n, heartbeat_at: n.heartbeat_at ? Math.round(t - n.heartbeat_at) : null }));
    if (!changed(nodes, view)) return;
    const rows = await Promise.all(
      data.nodes.map(async (n) => {
        const names = await Promise.all(n.actors.map(keyOf));
        return h(
          "tr",
          { dataset: { node: n.node } },
          h("td", {}, h("code", {}, n.node), n.this_node ? h("span", { class: "badge" }, "this node") : null),
          h("td", {}, n.address || "—"),
          h("td", {}, n.started_at ? `${age(t - n.started_at)} ago` : "—"),
          h("td", {}, n.heartbeat_at ? `${age(t - n.heartbeat_at)} ago` : "—"),
          h("td", { class: "num" }, n.actor_count),
          h(
            "td",
            { class: "node-actors" },
            n.actors.length
              ? n.actors.map((id, i) => [i ? ", " : "", h("a", { href: `#/actor/${encodeURIComponent(id)}` }, names[i])])
              : h("span", { class: "muted" }, "none"),
            n.actor_count > n.actors.length ? h("span", { class: "muted" }, ` … and ${n.actor_count - n.actors.length} more`) : null,
          ),
        );
      }),
    );
    replace(nodes, table(["Node", "Address", "Started", "Heartbeat", "Actors", "Runs now"], rows, { cls: "nodes" }));
  };

  const history = new History(SPAN);
  const scrape = async () => {
    const samples = parseMetrics(await request("GET", "/metrics", { text: true }));
    const t = now();
    for (const name of [
      "actorq_messages_sent_total",
      "actorq_messages_completed_total",
      "actorq_messages_failed_total",
      "actorq_actions_total",
      "actorq_awake_actors",
      "actorq_vm_awake",
      "actorq_cluster_leases_held",
    ]) {
      history.add(name, t, metricValue(samples, name));
    }
    for (const state of ["pending", "delayed", "in_flight", "dead"]) {
      history.add(`depth:${state}`, t, metricValue(samples, "actorq_queue_messages", { state }));
    }
    const some = (series) => series.filter((s) => s.points.length);
    const panels = [
      ["Throughput (per second)", [
        { name: "sent", points: history.rate("actorq_messages_sent_total") },
        { name: "completed", points: history.rate("actorq_messages_completed_total"), color: "#2f9e44" },
        { name: "failed", points: history.rate("actorq_messages_failed_total"), color: "#c92a2a" },
        { name: "actions", points: history.rate("actorq_actions_total"), color: "#7048e8" },
      ]],
      ["Queue depth (all actors)", some([
        { name: "pending", points: history.points("depth:pending") },
        { name: "in flight", points: history.points("depth:in_flight"), color: "#e8590c" },
        { name: "delayed", points: history.points("depth:delayed"), color: "#0c8599" },
        { name: "dead", points: history.points("depth:dead"), color: "#c92a2a" },
      ])],
      ["Awake", some([
        { name: "actors", points: history.points("actorq_awake_actors") },
        { name: "agent VMs", points: history.points("actorq_vm_awake"), color: "#e8590c" },
        { name: "leases held", points: history.points("actorq_cluster_leases_held"), color: "#2f9e44" },
      ])],
    ];
    replace(
      charts,
      panels.map(([title, series]) =>
        h("div", { class: "chart-box", dataset: { chart: title } }, h("h3", {}, title), lineChart(series, { span: SPAN, now: t }), legend(series)),
      ),
    );
  };

  const stops = [every(2000, refreshNodes, fail), every(2000, scrape, fail)];
  return () => stops.forEach((s) => s());
}
