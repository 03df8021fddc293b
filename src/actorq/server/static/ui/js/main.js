// The inspector's router: #/actors, #/actor/<id>, #/vm/<id>, #/cluster. Each view is
// mount(element, params) -> clean-up function (stops its polling and WebSockets).

import { forgetToken, get, token } from "./api.js";
import { replace, h, errorText } from "./dom.js";
import { actorsView } from "./actors.js";
import { actorView } from "./actor.js";
import { vmView } from "./vm.js";
import { clusterView } from "./cluster.js";

const routes = [
  [/^#\/actors(?:\?(.*))?$/, (el, m) => actorsView(el, new URLSearchParams(m[1] || ""))],
  [/^#\/actor\/([^?]+)$/, (el, m) => actorView(el, decodeURIComponent(m[1]))],
  [/^#\/vm\/([^?]+)$/, (el, m) => vmView(el, decodeURIComponent(m[1]))],
  [/^#\/cluster$/, (el) => clusterView(el)],
];

let cleanup = null;

function route() {
  const view = document.getElementById("view");
  if (cleanup) cleanup();
  cleanup = null;
  const hash = location.hash || "#/actors";
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", hash.startsWith(`#/${a.dataset.nav}`) || (a.dataset.nav === "actors" && /^#\/(actor|vm)\//.test(hash)));
  }
  for (const [re, mount] of routes) {
    const m = hash.match(re);
    if (m) {
      replace(view);
      try {
        cleanup = mount(view, m) || null;
      } catch (e) {
        replace(view, h("p", { class: "error" }, errorText(e)));
      }
      return;
    }
  }
  replace(view, h("p", { class: "error" }, `No such page: ${hash}`));
}

async function health() {
  const el = document.getElementById("server-status");
  try {
    const r = await get("/healthz");
    el.textContent = `${r.status} · ${r.awake_actors} awake`;
    el.className = `status ${r.status === "ok" ? "ok" : "warn"}`;
  } catch (e) {
    el.textContent = "server unreachable";
    el.className = "status bad";
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  const forget = document.getElementById("forget-token");
  forget.hidden = !token();
  forget.addEventListener("click", () => {
    forgetToken();
    location.reload();
  });
  route();
  health();
  setInterval(health, 3000);
});
