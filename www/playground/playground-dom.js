// Building the page's elements. Text goes in as text (textContent and
// properties), never as HTML, so what a user types is never markup.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

export const code = (text) => el("code", { textContent: text });
