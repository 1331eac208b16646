// The open session: its header, and loading its messages into the timeline (the management
// contract's paged messages). The newest page loads first (before_seq, reversed for display) so even
// a huge session opens at once; older pages load when the top of the history scrolls into view.
// Opened at a message (a search hit), the pages around it load instead, newer ones as the bottom
// scrolls into view, and the message is scrolled to and marked for a moment. Live messages are drawn once per animation frame,
// however many arrive in it, with one look at the scroll position. A Claude Code session also shows
// its permission requests (requests.js), the tool running now, its hold switch and whether each of
// the person's messages reached Claude; any session its webhook deliveries, fetched when opened.

import { json } from "./api.js";
import { h, setUserText, userText } from "./dom.js";
import { dateTime, when } from "./format.js";
import { markdownReady, normalize } from "./messages.js";
import { RequestPanel } from "./requests.js";
import { activity, isClaude, label, requestFromApi } from "./store.js";
import { Timeline } from "./timeline.js";
import { showUsage } from "./usage.js";

const PAGE = 50;
const NEWEST = Number.MAX_SAFE_INTEGER; // before_seq for the newest page: every seq is below it
const STICK_TO_BOTTOM_PX = 80;
const FOUND_MS = 2500; // how long a message opened from a search stays marked

export class SessionView {
  // decide(request, decision, reason): what the request cards' buttons do
  constructor(elements, store, decide) {
    this.el = elements;
    this.store = store;
    this.timeline = new Timeline(elements.list);
    this.requests = new RequestPanel(elements.requests, decide);
    elements.deliveries.addEventListener("toggle", () => elements.deliveries.open && this.loadDeliveries());
    this.id = null;
    this.generation = 0; // bumped on every (re)load: answers for an older generation are dropped
    this.queue = []; // live messages waiting for the next frame
    this.reveal = false;
    this.frame = 0;
    this.observer = new IntersectionObserver(
      (entries) => entries.some((e) => e.isIntersecting) && this.loadOlder(),
      { root: elements.scroller, rootMargin: "200px 0px 0px 0px" },
    );
    this.observer.observe(elements.older);
    elements.older.addEventListener("click", () => this.loadOlder());
    new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && this.loadNewer(),
      { root: elements.scroller, rootMargin: "0px 0px 200px 0px" }).observe(elements.newer);
    elements.newer.addEventListener("click", () => this.loadNewer());
  }

  // `seq`: the message to open at (null: the newest).
  open(id, seq = null) {
    this.id = id;
    this.target = seq;
    this.el.deliveries.open = false;
    this.show();
    return this.reload();
  }

  close() {
    this.id = null;
    this.clear();
  }

  clear() {
    this.generation += 1;
    this.queue = [];
    this.requests.clear();
    this.timeline.steered = this.id !== null && isClaude(this.store.get(this.id));
    this.oldest = NEWEST;
    this.hasMore = true;
    this.newest = 0;
    this.hasNewer = false; // opened at a message: newer pages are still to load, live ones wait for them
    this.held = [];
    this.setLoading(false);
    this.timeline.clear();
    this.el.older.hidden = true;
    this.el.newer.hidden = true;
    this.el.start.hidden = true;
  }

  // The first page, again from scratch (opening, or after a resync).
  reload() {
    this.clear();
    if (this.timeline.steered) this.loadRequests();
    if (this.el.deliveries.open) this.loadDeliveries();
    return this.target === null ? this.loadPage(true) : this.loadAround(this.target);
  }

  messagesPath(query) {
    return `/api/sessions/${encodeURIComponent(this.id)}/messages?${query}`;
  }

  // The pages around one message (it and older, then newer), then it scrolled to and marked.
  async loadAround(seq) {
    const generation = this.generation;
    this.setLoading(true);
    let older;
    let newer;
    try {
      [older, newer] = await Promise.all([
        json("GET", this.messagesPath(`before_seq=${seq + 1}&limit=${PAGE / 2}`)),
        json("GET", this.messagesPath(`after_seq=${seq}&limit=${PAGE / 2}`)),
        markdownReady(),
      ]);
    } catch (error) {
      if (generation === this.generation) this.failed(error);
      return;
    }
    if (generation !== this.generation) return;
    this.setLoading(false);
    for (const m of [...older.messages, ...newer.messages]) this.insertPaged(m);
    this.hasMore = older.has_more;
    this.setNewer(newer.has_more);
    this.showEnds();
    if (this.queue.length) this.flush();
    const card = this.timeline.cardOf(seq);
    if (!card) return;
    card.scrollIntoView({ block: "center" });
    card.classList.add("found");
    setTimeout(() => card.classList.remove("found"), FOUND_MS);
  }

  insertPaged(m) {
    this.oldest = Math.min(this.oldest, m.seq);
    this.newest = Math.max(this.newest, m.seq);
    this.timeline.insert(normalize(m));
  }

  setNewer(more) {
    this.hasNewer = more;
    this.el.newer.hidden = !more;
    if (!more && this.held.length) {
      const held = this.held;
      this.held = [];
      held.forEach((message) => this.add(message));
    }
  }

  showEnds() {
    this.el.older.hidden = !this.hasMore;
    this.el.start.hidden = this.hasMore;
    this.el.start.textContent = this.timeline.size ? "Start of the session" : "No messages yet";
  }

  failed(error) {
    this.setLoading(false);
    this.el.start.textContent = `Could not load messages: ${error.message}`;
    this.el.start.hidden = false;
  }

  async loadNewer() {
    if (this.id === null || !this.hasNewer || this.loading) return;
    const generation = this.generation;
    this.setLoading(true);
    let page;
    try {
      [page] = await Promise.all([json("GET", this.messagesPath(`after_seq=${this.newest}&limit=${PAGE}`)), markdownReady()]);
    } catch (error) {
      if (generation === this.generation) this.failed(error);
      return;
    }
    if (generation !== this.generation) return;
    this.setLoading(false);
    for (const m of page.messages) this.insertPaged(m);
    this.setNewer(page.has_more);
  }

  async loadRequests() {
    const generation = this.generation;
    const id = this.id;
    let items;
    try {
      ({ items } = await json("GET", `/api/sessions/${encodeURIComponent(id)}/requests`));
    } catch {
      return; // the pending ones are known from the account's list; the history can wait for a reload
    }
    if (generation !== this.generation) return;
    for (const request of items) this.store.setRequest(requestFromApi(request));
    this.showRequests();
  }

  async loadDeliveries() {
    const id = this.id;
    const list = this.el.deliveriesList;
    list.replaceChildren(h("li", { class: "muted" }, "Loading…"));
    let items;
    try {
      ({ items } = await json("GET", `/api/sessions/${encodeURIComponent(id)}/webhook-runs`));
    } catch (error) {
      if (id === this.id) list.replaceChildren(h("li", { class: "problem" }, `Could not load deliveries: ${error.message}`));
      return;
    }
    if (id !== this.id) return;
    list.replaceChildren(...(items.length ? items.map(runItem)
      : [h("li", { class: "muted" }, "No webhook deliveries for this session (Settings lists the webhooks).")]));
  }

  loadOlder() {
    if (this.id !== null && this.hasMore && !this.loading) this.loadPage(false);
  }

  async loadPage(first) {
    const generation = this.generation;
    this.setLoading(true);
    let page;
    try {
      [page] = await Promise.all([json("GET", this.messagesPath(`before_seq=${this.oldest}&limit=${PAGE}`)), markdownReady()]);
    } catch (error) {
      if (generation === this.generation) this.failed(error);
      return;
    }
    if (generation !== this.generation) return;
    this.setLoading(false);
    const scroller = this.el.scroller;
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    for (const m of page.messages) this.insertPaged(m);
    this.hasMore = page.has_more;
    this.showEnds();
    if (this.queue.length) this.flush();
    // Keep what the person was reading where it was; the first page starts at the newest message.
    scroller.scrollTop = first ? scroller.scrollHeight : scroller.scrollHeight - fromBottom;
    // A short page may not fill the view: the observer only fires on a change, so look again.
    if (this.hasMore) requestAnimationFrame(() => this.topVisible() && this.loadOlder());
  }

  setLoading(loading) {
    this.loading = loading;
    // A page is not news: screen readers hear live messages, not fifty loaded at once.
    this.el.log.setAttribute("aria-busy", String(loading));
    this.el.older.disabled = loading;
    this.el.older.textContent = loading ? "Loading older messages…" : "Load older messages";
    this.el.newer.disabled = loading;
  }

  topVisible() {
    const scroller = this.el.scroller.getBoundingClientRect();
    return this.el.older.getBoundingClientRect().bottom >= scroller.top - 200;
  }

  // A message that arrived live (an update, or the answer to our own send, which is always revealed).
  add(message, reveal = false) {
    if (this.hasNewer) return void this.held.push(message); // drawn once the pages before it are
    this.queue.push(message);
    this.reveal ||= reveal;
    if (this.frame) return;
    this.frame = -1; // asked for: drawn in the first frame once Markdown can be drawn
    markdownReady().then(() => {
      this.frame = requestAnimationFrame(() => this.flush());
    });
  }

  flush() {
    this.frame = 0;
    // Updates that arrive while the first page is on its way wait for it (loadPage, loadAround): drawn
    // now, those older than its newest message would stand above it, more than a page and maybe a gap.
    if (this.oldest === NEWEST && this.loading) return;
    const scroller = this.el.scroller;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICK_TO_BOTTOM_PX;
    let added = false;
    for (const message of this.queue) {
      // An update that reached the page after the page of history it belongs to (a lagging socket, or
      // another host's delivery) comes again with the next older page: drawn now, it would stand
      // above messages not loaded yet, a gap in what reads as one history.
      if (this.oldest !== NEWEST && message.seq < this.oldest) continue;
      // Opened at a message, newer pages still to load: it is drawn after them (as add() holds it).
      if (this.hasNewer && message.seq > this.newest) {
        this.held.push(message);
        continue;
      }
      added = this.timeline.insert(message) || added;
    }
    const reveal = this.reveal;
    this.queue = [];
    this.reveal = false;
    if (!added) return;
    if (!this.hasMore) this.el.start.textContent = "Start of the session";
    if (atBottom || reveal) scroller.scrollTop = scroller.scrollHeight;
  }

  // Everything drawn from the store's state of the session (header, running tool, requests).
  show() {
    this.showHeader();
    this.showRequests();
  }

  showRequests() {
    if (this.timeline.steered) this.requests.show(this.store.requestsOf(this.id));
  }

  // A queued message of the person's reached Claude (it may still wait for the next frame).
  deliver(id, at) {
    for (const message of this.queue) if (message.id === id) message.deliveredAt = at;
    this.timeline.deliver(id, at);
  }

  showHeader() {
    const s = this.store.get(this.id);
    setUserText(this.el.title, label(s));
    this.el.title.title = label(s);  // the whole of a title cut to two lines
    const parts = [`started ${dateTime(s.createdAt)}`, activity(s)];
    if (s.awaitingMessage) parts.push(s.hold ? "waiting for your message" : "waiting for you");
    if (s.systemPrompt) parts.push("has a system prompt");
    const claude = isClaude(s);
    this.el.holdLabel.hidden = !claude;
    this.el.hold.checked = claude && s.hold;
    const running = s.running;
    this.el.running.hidden = !running;
    if (running) {
      this.el.running.replaceChildren("Running ", userText(running.tool),
        ...(running.detail ? [": ", userText(running.detail, { class: "detail" })] : []));
    }
    const tag = s.title && s.tag ? ["tag ", userText(s.tag), " · "] : [];
    this.el.subtitle.replaceChildren(...tag, parts.join(" · "));
    this.el.subtitle.dataset.activity = activity(s);
    showUsage(this.el.usage, s.usage);
  }
}

// What a run's last attempt got: its HTTP status and its error (which may just repeat the status).
export function attempt(run) {
  const status = run.response_status ? `HTTP ${run.response_status}` : null;
  return [status, run.error && run.error !== status ? run.error : null].filter(Boolean);
}

// One webhook run: the event, its state and what the last attempt got.
function runItem(run) {
  const last = [...attempt(run), Number.isFinite(run.duration_ms) ? `${run.duration_ms} ms` : null].filter(Boolean);
  const retry = run.status === "pending" && run.next_attempt_at ? `, next try ${when(Date.parse(run.next_attempt_at))}` : "";
  return h("li", { class: "run-item", dataset: { status: run.status } },
    h("strong", {}, run.event), ` to webhook ${run.webhook_id}: ${run.status}`,
    ` (${run.attempts} attempt${run.attempts === 1 ? "" : "s"}${last.length ? `; last ${last.join(", ")}` : ""}${retry})`,
    " · ", when(Date.parse(run.created_at)));
}
