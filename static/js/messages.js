// One message as a list item. Content is untrusted: it only ever reaches the page as textContent.
// JSON values (and strings that hold a JSON object or array) are pretty-printed; long content starts
// collapsed behind a real button.

import { when } from "./format.js";

const ROLE_LABELS = { user: "User", assistant: "Assistant", system: "System", tool: "Tool" };
const COLLAPSE_CHARS = 1500;
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
  };
}

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

let counter = 0;

export function renderMessage(message) {
  const item = document.createElement("li");
  const role = message.role || "agent";
  item.className = `message role-${role}`;
  item.dataset.seq = message.seq;
  item.dataset.id = message.id;

  const header = document.createElement("p");
  header.className = "message-header";
  const roleLabel = document.createElement("span");
  roleLabel.className = "role";
  roleLabel.textContent = ROLE_LABELS[role] || "Agent";
  const time = document.createElement("time");
  if (Number.isFinite(message.createdAt)) {
    time.dateTime = new Date(message.createdAt).toISOString();
    time.textContent = when(message.createdAt);
  }
  const seq = document.createElement("span");
  seq.className = "seq";
  seq.textContent = `#${message.seq}`;
  header.append(roleLabel, " ", time, " ", seq);

  const { text, json } = display(message.content);
  const body = document.createElement(json ? "pre" : "div");
  body.className = json ? "content json" : "content";
  body.id = `message-content-${++counter}`;
  body.textContent = text;
  item.append(header, body);

  const lines = text.split("\n").length;
  if (text.length > COLLAPSE_CHARS || lines > COLLAPSE_LINES) {
    item.classList.add("collapsed");
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "expand";
    toggle.setAttribute("aria-controls", body.id);
    toggle.setAttribute("aria-expanded", "false");
    const summary = `${lines.toLocaleString()} lines, ${text.length.toLocaleString()} characters`;
    toggle.textContent = `Show all (${summary})`;
    toggle.addEventListener("click", () => {
      const expanded = item.classList.toggle("collapsed") === false;
      toggle.setAttribute("aria-expanded", String(expanded));
      toggle.textContent = expanded ? "Show less" : `Show all (${summary})`;
    });
    item.append(toggle);
  }

  if (message.metadata !== null) {
    const details = document.createElement("details");
    details.className = "metadata";
    const summary = document.createElement("summary");
    summary.textContent = "Metadata";
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(message.metadata, null, 2);
    details.append(summary, pre);
    item.append(details);
  }
  return item;
}
