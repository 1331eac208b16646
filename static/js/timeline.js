// The open session's messages as drawn: one card per message in seq order, except that consecutive
// messages of a joining kind (command output, tool calls) share one card, one line each, as a
// terminal shows them; a long run of tool calls folds into its header, a click away. Every card can
// show its message as raw JSON instead. Messages are keyed by id: a page, a live update and the answer to our own POST may all carry
// the same message, and it is drawn once. Cards carry data-seq (their first message) and data-last.
// In a Claude Code session (`steered`) the person's messages say whether Claude has received them.

import { h } from "./dom.js";
import { dateTime, when } from "./format.js";
import { collapsible, kindOf, rawJson } from "./messages.js";

const ROLE_LABELS = { user: "User", assistant: "Assistant", system: "System", tool: "Tool" };

export class Timeline {
  constructor(list) {
    this.list = list;
    this.steered = false;
    this.clear();
  }

  // A queued message of the person's reached Claude.
  deliver(id, at) {
    const item = this.list.querySelector(`li[data-id="${CSS.escape(id)}"] .delivery`);
    if (item) setDelivery(item, at);
  }

  clear() {
    this.ids = new Set();
    this.list.replaceChildren();
  }

  get size() {
    return this.ids.size;
  }

  // Draws the message where its seq says; false when it is already drawn.
  insert(message) {
    if (this.ids.has(message.id)) return false;
    this.ids.add(message.id);
    const kind = kindOf(message);
    const after = this.cardBefore(message.seq);
    const next = after ? after.nextElementSibling : this.list.firstElementChild;
    if (kind.joins) {
      const line = kind.render(message);
      if (joinable(after, kind)) {
        addLine(after, line);
        if (joinable(next, kind)) merge(after, next);
      } else if (joinable(next, kind)) {
        addLine(next, line);
      } else {
        this.list.insertBefore(runCard(kind, message, line), next);
      }
      return true;
    }
    // Between two lines of one run (only if messages arrive out of order): the run splits around it.
    if (after && after.classList.contains("run") && Number(after.dataset.last) > message.seq) split(after, message.seq);
    this.list.insertBefore(card(kind, message, this.steered), after ? after.nextElementSibling : this.list.firstElementChild);
    return true;
  }

  // The card that holds the message with this seq (a run card holds a range), or null.
  cardOf(seq) {
    const card = this.cardBefore(seq); // the last card starting at or before it
    return card && Number(card.dataset.last) >= seq ? card : null;
  }

  // The last card whose first seq is below `seq`, or null. Pages arrive newest first (each one goes
  // to the top) and live messages at the bottom, so both ends are checked first.
  cardBefore(seq) {
    const first = this.list.firstElementChild;
    if (!first || Number(first.dataset.seq) > seq) return null;
    let card = this.list.lastElementChild;
    while (card && Number(card.dataset.seq) > seq) card = card.previousElementSibling;
    return card;
  }
}

function header(label, message, ...rest) {
  const time = h("time");
  setTime(time, message.createdAt);
  return h("p", { class: "message-header" }, h("span", { class: "role" }, label), " ", time, " ", ...rest);
}

function setDelivery(element, at) {
  element.dataset.state = at ? "delivered" : "queued";
  if (at) {
    const time = h("time");
    setTime(time, at);
    element.replaceChildren("Delivered to Claude ", time);
  } else {
    element.replaceChildren("Queued: Claude gets it when it stops or at your next prompt");
  }
}

function setTime(time, ms) {
  if (!Number.isFinite(ms)) return;
  time.dateTime = new Date(ms).toISOString();
  time.textContent = when(ms);
  time.title = dateTime(ms);
}

const labelOf = (kind, message) => (typeof kind.label === "function" ? kind.label(message) : kind.label);

// The card's "Raw JSON" switch: the message as stored takes the place of its drawn body.
function rawSwitch(body, message) {
  const button = h("button", { type: "button", class: "raw-toggle", "aria-pressed": "false" }, "Raw JSON");
  let raw = null;
  button.addEventListener("click", () => {
    if (raw) {
      raw.forEach((node) => node.remove());
      raw = null;
    } else {
      raw = collapsible(rawJson(message), (nodes) => h("pre", { class: "content json raw" }, nodes));
      body.after(...raw);
    }
    body.hidden = raw !== null;
    button.setAttribute("aria-pressed", String(raw !== null));
  });
  return button;
}

function card(kind, message, steered) {
  const role = message.role || "agent";
  let delivery = null;
  if (steered && role === "user") {
    delivery = h("p", { class: "delivery" });
    setDelivery(delivery, message.deliveredAt);
  }
  const body = h("div", { class: "body" }, kind.render(message));
  return h("li", { class: `message role-${role} kind-${kind.name}`, dataset: { seq: message.seq, last: message.seq, id: message.id } },
    header(labelOf(kind, message) || ROLE_LABELS[role] || "Agent", message, h("span", { class: "seq" }, `#${message.seq}`),
      rawSwitch(body, message)),
    body,
    delivery,
    message.metadata === null ? null : h("details", { class: "metadata" },
      h("summary", {}, "Metadata"), h("pre", {}, JSON.stringify(message.metadata, null, 2))));
}

// A card of joined lines: the header names the kind, the first line's time and the seq range.
function runCard(kind, message, line) {
  const lines = h(kind.container || "pre", { class: "lines", id: `run-${++runs}` }, line);
  const fold = h("button", { type: "button", class: "fold", "aria-controls": lines.id, "aria-expanded": "true" });
  const item = h("li", { class: `message run role-${message.role || "agent"} kind-${kind.name}`, dataset: { seq: message.seq, last: message.seq } },
    header(kind.label, message, h("span", { class: "seq" }), fold),
    lines);
  item.kind = kind;
  item.states = isState(line) ? 1 : 0;
  fold.addEventListener("click", () => {
    item.folded = true; // the person's choice stands, however long the run grows
    setFolded(item, fold.getAttribute("aria-expanded") === "true");
  });
  updateRange(item);
  return item;
}

let runs = 0;

// How many lines a run counts: not the states of a line still being redrawn (output marked
// `progress`), which the finished line takes the place of. Kept as lines come and go (`item.states`):
// counting them again would cost a look at every line of a long run for each line added.
const isState = (line) => line.classList.contains("progress");
const counted = (item) => item.querySelector(".lines").children.length - item.states;

function setFolded(item, folded) {
  const fold = item.querySelector(".fold");
  const count = counted(item);
  const [one, many] = item.kind.unit || ["line", "lines"];
  item.querySelector(".lines").hidden = folded;
  fold.setAttribute("aria-expanded", String(!folded));
  fold.textContent = folded ? `Show ${count.toLocaleString()} ${count === 1 ? one : many}` : "Hide";
}

const joinable = (item, kind) => item !== null && item.kind === kind;

function addLine(item, line) {
  const lines = item.querySelector(".lines");
  const seq = Number(line.dataset.seq);
  let after = lines.lastElementChild;
  while (after && Number(after.dataset.seq) > seq) after = after.previousElementSibling;
  lines.insertBefore(line, after ? after.nextElementSibling : lines.firstElementChild);
  item.states += isState(line) ? 1 : 0;
  updateRange(item);
}

function merge(item, next) {
  item.querySelector(".lines").append(...next.querySelector(".lines").children);
  item.states += next.states;
  next.remove();
  updateRange(item);
}

function split(item, seq) {
  const lines = [...item.querySelector(".lines").children].filter((line) => Number(line.dataset.seq) > seq);
  const rest = runCard(item.kind, { role: null, seq: Number(lines[0].dataset.seq), createdAt: NaN }, lines[0]);
  rest.querySelector(".lines").append(...lines.slice(1));
  const moved = lines.filter(isState).length;
  rest.states = moved;
  item.states -= moved;
  updateRange(rest);
  item.after(rest);
  updateRange(item);
}

function updateRange(item) {
  const lines = item.querySelector(".lines");
  const first = Number(lines.firstElementChild.dataset.seq);
  const last = Number(lines.lastElementChild.dataset.seq);
  item.dataset.seq = first;
  item.dataset.last = last;
  setTime(item.querySelector("time"), Number(lines.firstElementChild.dataset.time));
  const count = counted(item);
  const [one, many] = item.kind.unit || ["line", "lines"];
  item.querySelector(".seq").textContent = first === last ? `#${first}` : `#${first}–${last} · ${count.toLocaleString()} ${count === 1 ? one : many}`;
  const folded = item.folded ? lines.hidden : Boolean(item.kind.collapseFrom && count >= item.kind.collapseFrom);
  setFolded(item, folded);
}
