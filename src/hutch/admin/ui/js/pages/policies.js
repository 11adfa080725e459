// TODO(#17): the policies page.
import { h } from "../dom.js";

export async function render(root, params, ctx) {
  root.append(h("h1", {}, "policies"));
  return {};
}
