import { h, replace } from "./dom.js";
export function clusterView(el) {
  replace(el, h("p", {}, "cluster"));
}
