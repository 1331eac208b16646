// How each kind of message content looks. A kind is {name, matches(message), render(message)}: the
// first kind that matches draws the message's body (render returns its nodes). A kind with `joins: true` draws one line per
// message instead (`render` then returns the line), and consecutive messages of that kind share one
// card (timeline.js), as a terminal shows output. To show a new shape of content, register a kind.
//
// Content is untrusted: it only ever reaches the page as text, and long text is drawn only when asked
// for (a collapsed message holds its first lines in the page, not its megabyte).

import { h, visible } from "./dom.js";

export const COLLAPSE_CHARS = 1500;
const COLLAPSE_LINES = 20;

// Messages arrive from the v3 pages and updates (camelCase, ms) and from the management API
// (snake_case, ISO); the role is null for messages an agent posted through the agent API.
export function normalize(m) {
  return {
    id: m.id,
    seq: m.seq,
    role: m.role ?? null,
    content: m.content,
    metadata: m.metadata ?? null,
    createdAt: m.createdAt ?? Date.parse(m.created_at),
    // When Claude Code received a person's message (null while queued, and for every other message).
    deliveredAt: m.deliveredAt ?? (m.delivered_at ? Date.parse(m.delivered_at) : null),
  };
}

const kinds = [];

// Kinds registered later are tried first, so a specific shape wins over the catch-all text kind.
export function registerKind(kind) {
  kinds.unshift(kind);
}

export function kindOf(message) {
  return kinds.find((kind) => kind.matches(message));
}

let counter = 0;
export const uniqueId = (prefix) => `${prefix}-${++counter}`;

// Long text shows its start behind a real button; the rest is drawn on the first "Show all".
export function collapsible(text, makeBody) {
  const lines = countLines(text);
  const body = makeBody(visible(text.length > COLLAPSE_CHARS || lines > COLLAPSE_LINES ? preview(text) : text));
  if (text.length <= COLLAPSE_CHARS && lines <= COLLAPSE_LINES) return [body];
  body.id = uniqueId("message-content");
  body.classList.add("collapsed");
  const summary = `${lines.toLocaleString()} lines, ${text.length.toLocaleString()} characters`;
  const toggle = h("button", { type: "button", class: "expand", "aria-controls": body.id, "aria-expanded": "false" },
    `Show all (${summary})`);
  toggle.addEventListener("click", () => {
    const expanded = toggle.getAttribute("aria-expanded") !== "true";
    body.replaceChildren(...visible(expanded ? text : preview(text)));
    body.classList.toggle("collapsed", !expanded);
    toggle.setAttribute("aria-expanded", String(expanded));
    toggle.textContent = expanded ? "Show less" : `Show all (${summary})`;
  });
  return [body, toggle];
}

function countLines(text) {
  let lines = 1;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) lines += 1;
  return lines;
}

function preview(text) {
  let end = Math.min(text.length, COLLAPSE_CHARS);
  let i = -1;
  for (let line = 0; line < COLLAPSE_LINES; line += 1) {
    i = text.indexOf("\n", i + 1);
    if (i === -1 || i >= end) break;
    if (line === COLLAPSE_LINES - 1) end = i;
  }
  return text.slice(0, end);
}

// JSON values (and strings that hold a JSON object or array) are pretty-printed.
function display(content) {
  if (typeof content === "string") {
    const trimmed = content.trim();
    if (/^[[{]/.test(trimmed)) {
      try {
        return { text: JSON.stringify(JSON.parse(trimmed), null, 2), json: true };
      } catch {
        // not JSON after all: shown as the text it is
      }
    }
    return { text: content, json: false };
  }
  return { text: JSON.stringify(content, null, 2), json: true };
}

// The catch-all: text, or JSON pretty-printed.
registerKind({
  name: "text",
  matches: () => true,
  render(message) {
    const { text, json } = display(message.content);
    return collapsible(text, (nodes) => h(json ? "pre" : "div", { class: json ? "content json" : "content", dir: "auto" }, nodes));
  },
});

// What the command wrapper (client.py run) posts for each line its command prints.
const isOutput = (c) => c !== null && typeof c === "object" && !Array.isArray(c) && c.type === "output"
  && (c.stream === "stdout" || c.stream === "stderr") && typeof c.text === "string";

const LINE_CHARS = 2000;

registerKind({
  name: "output",
  label: "Output",
  joins: true,
  matches: (message) => message.role === null && isOutput(message.content),
  render(message) {
    const { stream, text } = message.content;
    const line = text.endsWith("\n") ? text.slice(0, -1) : text;
    const element = h("span", { class: `line ${stream}`, dir: "auto", dataset: { seq: message.seq, id: message.id, time: message.createdAt } },
      stream === "stderr" ? h("span", { class: "visually-hidden" }, "stderr: ") : null,
      visible(line.length > LINE_CHARS ? line.slice(0, LINE_CHARS) : line));
    if (line.length > LINE_CHARS) {
      const rest = line.length - LINE_CHARS;
      element.append(h("button", { type: "button", class: "more-line", on: { click: (event) => {
        event.currentTarget.replaceWith(...visible(line.slice(LINE_CHARS)));
      } } }, `… ${rest.toLocaleString()} more characters`));
    }
    return element;
  },
});
