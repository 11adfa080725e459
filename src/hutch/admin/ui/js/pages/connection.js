// TODO(#17): the connection page.
import { h } from "../dom.js";

export async function render(root, params, ctx) {
  root.append(h("h1", {}, "connection"));
  return {};
}
