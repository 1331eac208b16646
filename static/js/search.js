// Search (GET /api/search): the top bar's box, and the hits in a panel below it. A hit shows its
// session, role, time and snippet, with the words that matched marked (the snippet arrives as
// segments, drawn as text and <mark> elements: nothing in it is read as markup). A message's snippet
// is shown as its Markdown reads (`**tokenize**` as tokenize), as the session shows it. Opening a hit
// opens its session at that message; a title hit opens the session.

import { ApiError, json } from "./api.js";
import { h, userText, visible } from "./dom.js";
import { when } from "./format.js";
import { markdownReady, readable } from "./messages.js";

const LIMIT = 20;
// Where a match starts and ends while a snippet goes through the Markdown lexer: characters of Unicode's
// private use area, which the lexer keeps as letters (found text holding one has it replaced first).
const START = "\uE000";
const END = "\uE001";
const MARKERS = /[\uE000\uE001]/g;
// A snippet is a window of the text: a link it cuts at either edge is shown as its text, as a whole one is.
const CUT_LINK_START = /^(…?[^[\]]*)\]\([^)\s]*\)/;
const CUT_LINK_END = /\[([^[\]]*)\]\([^)\s]*?(…?)$/;
const ROLES = { user: "User", assistant: "Assistant", system: "System", tool: "Tool" };

export class Search {
  // onOpen(sessionId, seq or null)
  constructor({ form, input, panel, list, status, more, close }, onOpen) {
    this.el = { form, input, panel, list, status, more };
    this.onOpen = onOpen;
    this.asked = 0; // bumped per search: answers to an earlier one are dropped
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run(input.value.trim());
    });
    more.addEventListener("click", () => this.page());
    close.addEventListener("click", () => this.close(true));
    panel.addEventListener("keydown", (event) => event.key === "Escape" && this.close(true));
    input.addEventListener("keydown", (event) => event.key === "Escape" && this.close(true));
  }

  async run(query) {
    if (!query) return this.close(false);
    this.query = query;
    this.cursor = null;
    this.el.list.replaceChildren();
    this.el.panel.hidden = false;
    await this.page();
  }

  async page() {
    const asked = ++this.asked;
    const params = new URLSearchParams({ q: this.query, limit: String(LIMIT) });
    if (this.cursor) params.set("cursor", this.cursor);
    this.el.more.hidden = true;
    this.el.status.textContent = "Searching…";
    let answer;
    try {
      [answer] = await Promise.all([json("GET", `/api/search?${params}`), markdownReady()]);
    } catch (error) {
      if (asked !== this.asked) return;
      this.el.status.textContent = error instanceof ApiError && error.status === 400
        ? `This search could not be read: ${error.message.replace(/^q: /, "")}. Quote words with special characters ("like:this").`
        : `Search failed: ${error.message}`;
      return;
    }
    if (asked !== this.asked) return;
    this.el.list.append(...answer.items.map((hit) => this.hitItem(hit)));
    this.cursor = answer.next_cursor;
    this.el.more.hidden = this.cursor === null;
    const count = this.el.list.children.length;
    this.el.status.replaceChildren(count ? `${count.toLocaleString()}${this.cursor ? "+" : ""} result${count === 1 ? "" : "s"} for `
      : "Nothing found for ", userText(this.query));
  }

  hitItem(hit) {
    const segments = hit.message_id === null ? hit.snippet : readableSegments(hit.snippet);
    const snippet = segments.map((segment) => (segment.match ? h("mark", {}, visible(segment.text)) : visible(segment.text)));
    const where = hit.message_id === null ? "Title" : `${ROLES[hit.role] ?? "Agent"} · #${hit.seq}`;
    return h("li", {}, h("button", {
      type: "button",
      class: "hit",
      dataset: { sessionId: hit.session_id, seq: hit.seq ?? "" },
      on: { click: () => {
        this.close(false);
        this.onOpen(hit.session_id, hit.seq);
      } },
    },
    h("span", { class: "hit-title" }, userText(hit.title || "Untitled session")),
    h("span", { class: "hit-meta" }, `${where} · ${when(Date.parse(hit.created_at))}`),
    h("span", { class: "hit-snippet", dir: "auto" }, snippet)));
  }

  close(refocus) {
    this.asked += 1;
    this.el.panel.hidden = true;
    if (refocus) this.el.input.focus();
  }
}

// The snippet as its Markdown reads, its matches still marked; as it came when that would hide a match
// (one inside a link's address, say) or the lexer fails.
function readableSegments(segments) {
  const joined = segments.map(({ text, match }) => {
    const clean = text.replace(MARKERS, "\uFFFD");
    return match ? START + clean + END : clean;
  }).join("");
  let text;
  try {
    text = readable(joined.replace(CUT_LINK_START, "$1").replace(CUT_LINK_END, "$1$2")).trim();
  } catch {
    return segments;
  }
  const parts = text.split(/\uE000([^\uE000\uE001]*)\uE001/);
  const found = (parts.length - 1) / 2;
  if (found !== segments.filter((segment) => segment.match).length || parts.join("").search(MARKERS) !== -1) return segments;
  return parts.map((part, i) => ({ text: part, match: i % 2 === 1 })).filter((segment) => segment.text !== "");
}
