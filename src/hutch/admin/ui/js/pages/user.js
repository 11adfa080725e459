// TODO(#17): the user page.
import { h } from "../dom.js";

export async function render(root, params, ctx) {
  root.append(h("h1", {}, "user"));
  return {};
}
