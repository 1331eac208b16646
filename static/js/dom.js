// Building DOM without HTML strings: h(tag, props, ...children) makes an element, and userText()
// wraps text that came from someone else (titles, tags, messages, account names) so that it can
// neither be read as markup nor reorder what is around it.

// Props: `class`, `dataset` (an object), `on` (event name -> handler), `aria-*` and other attributes
// by name, anything else set as a property (type, id, hidden, textContent...). Children: nodes,
// strings (as text), null/undefined/false (skipped), arrays (flattened).
export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "on") for (const [name, handler] of Object.entries(value)) element.addEventListener(name, handler);
    else if (key.startsWith("aria-") || key === "role" || key === "dir") element.setAttribute(key, String(value));
    else element[key] = value;
  }
  element.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

// Invisible characters that change the order or direction of what follows them: embeddings and
// overrides (U+202A-U+202E), isolates (U+2066-U+2069), the directional marks (U+200E, U+200F, U+061C).
// `invoice\u202Efdp.exe` would read "invoiceexe.pdf"; shown here as "invoice⟨U+202E⟩fdp.exe".
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/g;

export const hasBidiControls = (text) => text.search(BIDI_CONTROLS) !== -1;

// The text as nodes: the controls become visible markers (the character itself is left out, so it
// cannot act); everything else stays one text node per run.
export function visible(text) {
  if (!hasBidiControls(text)) return [text];
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(BIDI_CONTROLS)) {
    if (match.index > last) nodes.push(text.slice(last, match.index));
    const code = `U+${match[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
    nodes.push(h("span", { class: "bidi-control", title: `invisible direction control ${code}` }, `⟨${code}⟩`));
    last = match.index + match[0].length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

// A piece of user text as its own direction island (<bdi dir=auto>): right-to-left text stays right,
// and nothing in it reaches the text around it.
export function userText(text, props = {}) {
  return h("bdi", { dir: "auto", ...props }, visible(text));
}

// Replace an element's content with user text (what `textContent = text` did, made safe for bidi).
export function setUserText(element, text) {
  element.replaceChildren(...visible(text));
}
