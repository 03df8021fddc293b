import { h, replace } from "./dom.js";
export function vmView(el, actorId) {
  replace(el, h("p", {}, actorId));
}
