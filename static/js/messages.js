// How each kind of message content looks. A kind is {name, matches(message), render(message)}: the
// first kind that matches draws the message's body (render returns its nodes); `label` names it in
// the card's header (a string, or a function of the message). A kind with `joins: true` draws one
// line per message instead (`render` then returns the line), and consecutive messages of that kind
// share one card (timeline.js), as a terminal shows output; `unit` names what the card counts, and
// `collapseFrom` is how many lines a run holds before it folds into a one-line summary (a person's
// click decides from then on). To show a new shape of content, register a kind.
//
// Content is untrusted: it reaches the page as text, or as Markdown through markdown.js (the one
// sanitized path); long text is drawn only when asked for (a collapsed message holds its first lines
// in the page, not its megabyte).

import { h, userText, visible } from "./dom.js";
import { shownPart, terminalLine } from "./terminal.js";

// Markdown's libraries (about 180 KB) load once something asks for them (a session opens, or the
// list has been drawn), not before the page: the session list shows without waiting for them. Views
// await `markdownReady()` before drawing messages (it also resolves when they fail to load: text is
// then shown plain).
let markdown = null;
let plainText = null;
let loading = null;
export function markdownReady() {
  loading ??= import("./markdown.js").then((module) => {
    ({ markdown, plainText } = module);
  }, () => {});
  return loading;
}

// What a reader sees of the text's Markdown, without its markup (the text itself until the libraries
// have loaded, or when they failed to).
export const readable = (text) => (plainText === null ? text : plainText(text));

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
// `draw` turns text into nodes (plain text by default, or Markdown).
export function collapsible(text, makeBody, draw = visible) {
  const lines = countLines(text);
  const body = makeBody(draw(text.length > COLLAPSE_CHARS || lines > COLLAPSE_LINES ? preview(text) : text));
  if (text.length <= COLLAPSE_CHARS && lines <= COLLAPSE_LINES) return [body];
  body.id = uniqueId("message-content");
  body.classList.add("collapsed");
  const summary = `${lines.toLocaleString()} lines, ${text.length.toLocaleString()} characters`;
  const toggle = h("button", { type: "button", class: "expand", "aria-controls": body.id, "aria-expanded": "false" },
    `Show all (${summary})`);
  toggle.addEventListener("click", () => {
    const expanded = toggle.getAttribute("aria-expanded") !== "true";
    body.replaceChildren(...draw(expanded ? text : preview(text)));
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

// Markdown of a megabyte would hold the tab for seconds: text this long is shown as it is.
const MARKDOWN_CHARS = 100_000;

// Text as Markdown (collapsed when long), or JSON pretty-printed.
export function renderText(content) {
  const { text, json } = display(content);
  if (json) return collapsible(text, (nodes) => h("pre", { class: "content json", dir: "auto" }, nodes));
  if (text.length > MARKDOWN_CHARS || markdown === null) return collapsible(text, (nodes) => h("div", { class: "content", dir: "auto" }, nodes));
  return collapsible(text, (nodes) => h("div", { class: "content markdown", dir: "auto" }, nodes), markdown);
}

// The catch-all: text, or JSON pretty-printed.
registerKind({
  name: "text",
  matches: () => true,
  render: (message) => renderText(message.content),
});

// The message as stored, for the raw JSON view of any card.
export const rawJson = (message) => JSON.stringify({ role: message.role, content: message.content }, null, 2);

// What the command wrapper (client.py run) posts for each line its command prints; `progress: true`
// marks the state so far of a line still being redrawn (app.css hides it once its stream goes on).
const isOutput = (c) => c !== null && typeof c === "object" && !Array.isArray(c) && c.type === "output"
  && (c.stream === "stdout" || c.stream === "stderr") && typeof c.text === "string";

// Counted in what a line shows (shownPart): a progress bar's line holds every state it drew.
const LINE_CHARS = 2000;

registerKind({
  name: "output",
  label: "Output",
  joins: true,
  matches: (message) => message.role === null && isOutput(message.content),
  render(message) {
    const { stream, text } = message.content;
    const line = shownPart(text.endsWith("\n") ? text.slice(0, -1) : text);
    const progress = message.content.progress === true ? " progress" : "";
    const element = h("span", { class: `line ${stream}${progress}`, dir: "auto", dataset: { seq: message.seq, id: message.id, time: message.createdAt } },
      stream === "stderr" ? h("span", { class: "visually-hidden" }, "stderr: ") : null,
      terminalLine(line.length > LINE_CHARS ? line.slice(0, LINE_CHARS) : line));
    if (line.length > LINE_CHARS) {
      const rest = line.length - LINE_CHARS;
      element.append(h("button", { type: "button", class: "more-line", on: { click: (event) => {
        event.currentTarget.replaceWith(...terminalLine(line.slice(LINE_CHARS)));
      } } }, `… ${rest.toLocaleString()} more characters`));
    }
    return element;
  },
});

// --- agents' structured messages -------------------------------------------------------------------

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const isBlocks = (value) => Array.isArray(value) && value.length > 0 && value.every((b) => isObject(b) && typeof b.type === "string");
const BLOCK_TYPES = new Set(["text", "thinking", "redacted_thinking", "tool_use", "tool_result", "image"]);

// Claude content blocks, wherever they are: the content itself, an API message's `content`, or one block.
function blocksOf(content) {
  if (isBlocks(content)) return content;
  if (isObject(content) && isBlocks(content.content)) return content.content;
  if (isObject(content) && BLOCK_TYPES.has(content.type)) return [content];
  return null;
}

const TOOL_BLOCKS = new Set(["tool_use", "tool_result"]);
const toolBlocks = (content) => {
  const blocks = blocksOf(content);
  return blocks && blocks.every((b) => TOOL_BLOCKS.has(b.type)) ? blocks : null;
};
// What Switchboard's Claude Code hooks store for a finished tool call (routes/hooks.py).
const isHookTool = (message) => message.role === "tool" && isObject(message.content) && typeof message.content.tool === "string";

const LINE_TEXT = 200;
const firstLine = (text) => {
  const line = String(text).split("\n", 1)[0];
  return line.length > LINE_TEXT ? `${line.slice(0, LINE_TEXT)}…` : line;
};

// The one thing that says what a tool call did: its command, file, pattern, address...
function toolDetail(input) {
  if (!isObject(input)) return typeof input === "string" ? firstLine(input) : "";
  for (const key of ["command", "file_path", "path", "pattern", "url", "query", "description", "prompt"]) {
    if (typeof input[key] === "string" && input[key]) return firstLine(input[key]);
  }
  return "";
}

const resultText = (value) => (typeof value === "string" ? value
  : isBlocks(value) && value.every((b) => b.type === "text") ? value.map((b) => b.text).join("\n")
    : JSON.stringify(value, null, 2));

const STATUS_MARKS = { ok: "✓", error: "✗", interrupted: "■", call: "→" };
const STATUS_WORDS = { ok: "succeeded", error: "failed", interrupted: "interrupted", call: "called" };

// One tool step as a row: status, name, what it worked on, duration; the details open on a click and
// are drawn then (a session of a thousand tool calls holds a thousand summaries, not their outputs).
function toolRow({ name, detail, status, durationMs, parts, raw }) {
  const summary = h("summary", {},
    h("span", { class: "tool-status", "aria-hidden": "true" }, STATUS_MARKS[status]),
    h("span", { class: "visually-hidden" }, `${STATUS_WORDS[status]}: `),
    userText(name, { class: "tool-name" }),
    detail ? userText(detail, { class: "tool-detail" }) : null,
    Number.isFinite(durationMs) ? h("span", { class: "duration" }, duration(durationMs)) : null);
  const row = h("details", { class: "tool-row", dataset: { status } }, summary);
  row.addEventListener("toggle", () => {
    if (!row.open || row.drawn) return;
    row.drawn = true;
    for (const [label, value] of parts) {
      if (value === undefined || value === null) continue;
      const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
      row.append(h("p", { class: "input-label" }, label),
        ...collapsible(text, (nodes) => h("pre", { class: "tool-input", dir: "auto" }, nodes)));
    }
    row.append(rawToggle(() => raw));
  });
  return row;
}

function duration(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

// A "Raw JSON" button that shows (and hides) the message as stored, below itself.
export function rawToggle(text) {
  const button = h("button", { type: "button", class: "raw-toggle", "aria-pressed": "false" }, "Raw JSON");
  let shown = null;
  button.addEventListener("click", () => {
    if (shown) {
      shown.forEach((node) => node.remove());
      shown = null;
    } else {
      shown = collapsible(text(), (nodes) => h("pre", { class: "content json raw" }, nodes));
      button.after(...shown);
    }
    button.setAttribute("aria-pressed", String(shown !== null));
  });
  return button;
}

function blockRow(block) {
  if (block.type === "tool_use") {
    return toolRow({ name: typeof block.name === "string" ? block.name : "tool", detail: toolDetail(block.input), status: "call",
      parts: [["Input", block.input]], raw: JSON.stringify(block, null, 2) });
  }
  const text = resultText(block.content ?? "");
  return toolRow({ name: block.is_error ? "Error" : "Result", detail: firstLine(text), status: block.is_error ? "error" : "ok",
    parts: [["Output", text]], raw: JSON.stringify(block, null, 2) });
}

function renderBlock(block) {
  switch (block.type) {
    case "text":
      return typeof block.text === "string" ? renderText(block.text) : renderText(block);
    case "thinking": {
      const thinking = h("details", { class: "thinking" }, h("summary", {}, "Thinking"));
      thinking.addEventListener("toggle", () => {
        if (thinking.open && !thinking.drawn) {
          thinking.drawn = true;
          thinking.append(...renderText(String(block.thinking ?? "")));
        }
      });
      return thinking;
    }
    case "redacted_thinking":
      return h("p", { class: "muted thinking" }, "Thinking (redacted)");
    case "tool_use":
    case "tool_result":
      return blockRow(block);
    case "image":
      return h("p", { class: "muted" }, `[image${typeof block.source?.media_type === "string" ? `: ${block.source.media_type}` : ""}]`);
    default:
      return renderText(block);
  }
}

// What a tool-only message is drawn as, one line of a run.
function line(message, ...rows) {
  return h("div", { class: "line tool-line", dataset: { seq: message.seq, id: message.id, time: message.createdAt } }, rows);
}

const ROLE_NAMES = { user: "User", agent: "Agent", assistant: "Assistant", system: "System", tool: "Tool" };

// Happy-style {role, content: {type: "text", text}} (or plain text, or blocks): shown as what it says,
// labelled with the role it names.
registerKind({
  name: "happy",
  label: (message) => ROLE_NAMES[message.content.role] ?? null,
  matches: (message) => isObject(message.content) && typeof message.content.role === "string"
    && ((isObject(message.content.content) && message.content.content.type === "text" && typeof message.content.content.text === "string")
      || typeof message.content.content === "string"),
  render(message) {
    const inner = message.content.content;
    return renderText(typeof inner === "string" ? inner : inner.text);
  },
});

// Claude content blocks: text as Markdown, thinking folded, tool calls and results as rows.
registerKind({
  name: "blocks",
  matches: (message) => blocksOf(message.content) !== null,
  render: (message) => blocksOf(message.content).map(renderBlock).flat(),
});

// Tool calls and their results, each one compact row; consecutive ones share one card, folded to a
// count once there are a few.
registerKind({
  name: "tool",
  label: "Tools",
  joins: true,
  unit: ["step", "steps"],
  collapseFrom: 3,
  container: "div",
  matches: (message) => isHookTool(message) || toolBlocks(message.content) !== null,
  render(message) {
    if (!isHookTool(message)) return line(message, ...toolBlocks(message.content).map(blockRow));
    const c = message.content;
    const status = "error" in c ? (c.interrupted ? "interrupted" : "error") : "ok";
    return line(message, toolRow({ name: c.tool, detail: toolDetail(c.input), status, durationMs: c.durationMs,
      parts: [["Input", c.input], ["Output", c.response === undefined ? undefined : resultText(c.response)], ["Error", c.error]],
      raw: rawJson(message) }));
  },
});
