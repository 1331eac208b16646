// The open Claude Code session's permission requests as cards: what the tool would do, readable
// (Bash: its command; Write: the path and the content; Edit: the path, the old and the new text),
// Allow and Deny (with an optional reason Claude reads), then the outcome as it happens. Drawing
// only: the decision itself is `decide(request, decision, reason)`, given by main.js.

import { h, userText, visible } from "./dom.js";
import { when } from "./format.js";
import { collapsible } from "./messages.js";

const SHOWN_DECIDED = 2; // decided requests shown below the pending ones, unless the person asks for all
const REASON_CHARS = 2000;

const OUTCOMES = {
  pending: "Waiting for your decision",
  allowed: "Allowed",
  denied: "Denied",
  expired: "Expired: nobody decided in time, so Claude asked in its terminal",
  cancelled: "Cancelled: Claude moved on without it",
};

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const text = (value) => (typeof value === "string" ? value : JSON.stringify(value, null, 2));

function block(label, value, className = "") {
  return [
    label ? h("p", { class: "input-label" }, label) : null,
    ...collapsible(text(value), (nodes) => h("pre", { class: `tool-input ${className}`.trim(), dir: "auto" }, nodes)),
  ];
}

function path(value) {
  return h("p", { class: "input-path" }, "File ", userText(String(value), { class: "path" }));
}

// What the tool would do, as a person reads it. Unknown tools and shapes: their fields one by one.
export function toolInput(tool, input) {
  if (!isObject(input)) return block(null, input ?? null);
  if (tool === "Bash" && typeof input.command === "string") {
    return [
      input.description ? h("p", { class: "input-description", dir: "auto" }, visible(String(input.description))) : null,
      block(null, input.command, "command"),
    ];
  }
  if (tool === "Write" && "file_path" in input) {
    return [path(input.file_path), block("Content", input.content ?? "")];
  }
  if (tool === "Edit" && "file_path" in input) {
    return [
      path(input.file_path),
      block(input.replace_all ? "Replace every" : "Replace", input.old_string ?? "", "old"),
      block("With", input.new_string ?? "", "new"),
    ];
  }
  if (tool === "MultiEdit" && "file_path" in input && Array.isArray(input.edits)) {
    return [path(input.file_path), ...input.edits.flatMap((edit, i) => [
      block(`Edit ${i + 1}: replace`, edit?.old_string ?? "", "old"),
      block("With", edit?.new_string ?? "", "new"),
    ])];
  }
  return Object.entries(input).flatMap(([key, value]) => block(key, value));
}

// One line saying what a request was about: the command, the file, or its first text field.
function summary(request) {
  const input = request.input;
  if (!isObject(input)) return "";
  const value = input.command ?? input.file_path ?? Object.values(input).find((v) => typeof v === "string") ?? "";
  const line = String(value).split("\n", 1)[0];
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

export class RequestPanel {
  // element: the <section> holding an <ol>; decide(request, decision, reason) -> Promise
  constructor(element, decide) {
    this.el = element;
    this.list = element.querySelector("ol");
    this.more = element.querySelector("button.all-requests");
    this.decide = decide;
    this.cards = new Map(); // request id -> <li>, drawn for its status
    this.all = false;
    this.last = [];
    this.more.addEventListener("click", () => {
      this.all = !this.all;
      this.show(this.last);
    });
  }

  clear() {
    this.all = false;
    this.last = [];
    this.cards.clear();
    this.list.replaceChildren();
    this.el.hidden = true;
  }

  // requests: the session's, oldest first. A card is redrawn only when its request's status changed,
  // so a reason being typed into a pending card survives every other update.
  show(requests) {
    this.last = requests;
    const decided = requests.filter((r) => r.status !== "pending");
    const hiddenCount = this.all ? 0 : Math.max(0, decided.length - SHOWN_DECIDED);
    const hiddenIds = new Set(decided.slice(0, hiddenCount).map((r) => r.id));
    const shown = requests.filter((r) => !hiddenIds.has(r.id));
    const wanted = new Set(shown.map((r) => r.id));
    for (const [id, card] of this.cards) {
      if (!wanted.has(id)) {
        card.remove();
        this.cards.delete(id);
      }
    }
    let cursor = this.list.firstElementChild;
    for (const request of shown) {
      let card = this.cards.get(request.id);
      if (card && card.dataset.status !== request.status) {
        const fresh = this.card(request);
        const hadFocus = card.contains(document.activeElement);
        card.replaceWith(fresh);
        if (cursor === card) cursor = fresh;
        card = fresh;
        if (hadFocus) card.querySelector(".outcome").focus();
      } else if (!card) {
        card = this.card(request);
      }
      this.cards.set(request.id, card);
      if (card !== cursor) this.list.insertBefore(card, cursor);
      else cursor = cursor.nextElementSibling;
    }
    this.el.hidden = requests.length === 0;
    this.more.hidden = decided.length <= SHOWN_DECIDED;
    this.more.textContent = this.all ? "Show fewer requests" : `Show ${hiddenCount} earlier request${hiddenCount === 1 ? "" : "s"}`;
  }

  // A pending request in full; a decided one in two lines (what, then how it ended), its input folded.
  card(request) {
    const pending = request.status === "pending";
    const time = h("time", { dateTime: new Date(request.createdAt).toISOString() }, when(request.createdAt));
    const tool = userText(request.tool || "a tool", { class: "tool-name" });
    const header = pending
      ? h("p", { class: "request-header" }, h("span", { class: "role" }, "Approval"), " ",
        h("span", { class: "request-tool" }, "Claude wants to use ", tool), " ", time)
      : h("p", { class: "request-header" }, h("span", { class: "role" }, "Approval"), " ",
        h("span", { class: "request-tool" }, tool, ": ", userText(summary(request), { class: "request-summary" })), " ", time);
    return h("li", { class: `request ${pending ? "pending" : "decided"}`, dataset: { status: request.status, requestId: request.id } },
      header,
      pending ? [toolInput(request.tool, request.input), this.buttons(request)]
        : [outcome(request), h("details", { class: "request-input" }, h("summary", {}, "What it asked"), toolInput(request.tool, request.input))]);
  }

  buttons(request) {
    const reason = h("input", { type: "text", class: "reason", maxLength: REASON_CHARS, autocomplete: "off",
      "aria-label": "Reason for denying (optional; Claude reads it)", placeholder: "Reason if you deny (optional)" });
    const problem = h("p", { class: "problem", role: "alert", hidden: true });
    const allow = h("button", { type: "button", class: "allow" }, "Allow");
    const deny = h("button", { type: "button", class: "deny danger" }, "Deny");
    const act = async (decision) => {
      allow.disabled = deny.disabled = true;
      problem.hidden = true;
      try {
        await this.decide(request, decision, decision === "deny" ? reason.value.trim() : "");
      } catch (error) {
        problem.textContent = `Not sent: ${error.message}`;
        problem.hidden = false;
        allow.disabled = deny.disabled = false;
      }
    };
    allow.addEventListener("click", () => act("allow"));
    deny.addEventListener("click", () => act("deny"));
    reason.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        act("deny");
      }
    });
    return h("div", { class: "decide" }, reason, h("div", { class: "decide-buttons" }, allow, deny), problem);
  }
}

function outcome(request) {
  const at = request.decidedAt ? [" · ", when(request.decidedAt)] : [];
  return h("p", { class: "outcome", tabIndex: -1, dataset: { status: request.status } },
    h("strong", {}, OUTCOMES[request.status] || request.status), ...at,
    request.reason ? [h("br"), "Reason: ", userText(request.reason)] : null);
}
