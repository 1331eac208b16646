// The session list as drawn: the <ul> of the sessions the walk shows (walk.js: fetched a page at a
// time, filtered), most recently updated first. It draws at most once per animation frame and
// touches only the sessions that changed; the next page is fetched as the person scrolls to the end
// (or asks), so a list of 100,000 sessions opens as fast as one of 100 and one update costs the same
// in either.

import { h, setUserText, userText } from "./dom.js";
import { when } from "./format.js";
import { activity, label } from "./store.js";
import { showUsage } from "./usage.js";

export class SessionList {
  constructor({ list, empty, filteredEmpty, count, more, pane }, store, walk, onOpen) {
    this.el = { list, empty, filteredEmpty, count, more };
    this.store = store;
    this.walk = walk;
    this.onOpen = onOpen;
    this.items = new Map(); // id -> <li>, only for the sessions in the page
    this.dirty = new Set();
    this.all = true; // every drawn session must be refilled (after a reset, or a bigger limit)
    this.frame = 0;
    this.currentId = null;
    more.addEventListener("click", () => this.showMore(true));
    this.observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && this.showMore(false),
      { root: pane, rootMargin: "0px 0px 400px 0px" });
    this.observer.observe(more);
  }

  // The store's listener: remember what changed, draw it with the next frame.
  changed(change) {
    if (change.type === "reset") this.all = true;
    else this.dirty.add(change.id);
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  // Draw now (before moving focus to an item that may not be drawn yet).
  flush() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    const target = this.store.order.filter((session) => this.walk.shows(session));
    const wanted = new Set(target.map((s) => s.id));
    for (const [id, item] of this.items) {
      if (!wanted.has(id)) {
        item.remove();
        this.items.delete(id);
      }
    }
    const focused = this.el.list.contains(document.activeElement) ? document.activeElement : null;
    let cursor = this.el.list.firstElementChild;
    for (const session of target) {
      let item = this.items.get(session.id);
      if (!item) {
        item = this.create(session.id);
        this.fill(item, session);
      } else if (this.all || this.dirty.has(session.id)) {
        this.fill(item, session);
      }
      // Move only what is out of place: a moved node loses focus and costs a layout.
      if (item !== cursor) this.el.list.insertBefore(item, cursor);
      else cursor = cursor.nextElementSibling;
    }
    if (focused && document.activeElement !== focused && focused.isConnected) focused.focus();
    this.dirty.clear();
    this.all = false;
    const walk = this.walk;
    const shown = target.length;
    const settled = walk.frontier !== null || walk.complete; // a first page has arrived
    this.el.empty.hidden = !(settled && walk.complete && shown === 0 && !walk.filtered);
    this.el.filteredEmpty.hidden = !(settled && walk.complete && shown === 0 && walk.filtered);
    this.el.count.textContent = shown ? `(${shown.toLocaleString()}${walk.complete ? "" : "+"})` : "";
    this.el.more.hidden = walk.complete || !settled;
    this.el.more.disabled = walk.loading;
    this.el.more.textContent = walk.loading ? "Loading more sessions…" : walk.failed ? "Could not load more sessions: try again" : "Show more";
    // The observer reports changes only, seen at rendering steps: the button in view before a page and
    // again after it (the pane scrolled to the end while the page landed), or in view while a page was
    // on its way, is no change, and nothing would load any more. Observed afresh, it reports where the
    // button is at the next rendering step, so a button in view (a page too short to fill the pane
    // included) fetches the next page. Not after a failure, which would ask again in a loop: a click
    // (or scrolling away and back) tries again.
    if (!this.el.more.hidden && !walk.loading && !walk.failed) {
      this.observer.unobserve(this.el.more);
      this.observer.observe(this.el.more);
    }
  }

  // The next page of sessions; from a click, focus goes to the first one it shows.
  async showMore(byHand) {
    if (this.el.more.hidden) return;
    // A click while a page is on its way (asked for by scrolling) focuses that page's first session.
    if (byHand) this.focusFrom = this.el.list.children.length;
    if (this.walk.loading) return;
    await this.walk.next();
    this.flush();
    if (this.focusFrom !== undefined) {
      this.focusIndex(this.focusFrom);
      this.focusFrom = undefined;
    }
  }

  setCurrent(id) {
    for (const previous of [this.currentId, id]) if (previous) this.dirty.add(previous);
    this.currentId = id;
    this.schedule();
  }

  focus(id) {
    this.flush();
    this.items.get(id)?.querySelector("button").focus();
  }

  focusIndex(index) {
    this.el.list.children[index]?.querySelector("button").focus();
  }

  create(id) {
    const item = h("li", {},
      h("button", { type: "button", class: "session-item", dataset: { sessionId: id }, on: { click: () => this.onOpen(id) } },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { class: "session-text" }, h("span", { class: "session-name", dir: "auto" }), h("span", { class: "session-meta" }),
          h("span", { class: "session-usage", hidden: true }),
          h("span", { class: "waiting-marker", hidden: true }))));
    this.items.set(id, item);
    return item;
  }

  fill(item, session) {
    const button = item.firstElementChild;
    const state = activity(session);
    button.dataset.activity = state;
    setUserText(button.querySelector(".session-name"), label(session));
    const details = [`${state} · updated ${when(session.updatedAt)}`];
    if (session.title && session.tag) details.unshift(userText(session.tag), " · ");
    button.querySelector(".session-meta").replaceChildren(...details);
    showUsage(button.querySelector(".session-usage"), session.usage);
    // Pending approvals and a Claude awaiting the person: the person is what this session waits on.
    const waiting = this.store.waitingFor(session.id);
    const marker = button.querySelector(".waiting-marker");
    marker.hidden = waiting === 0;
    marker.textContent = waiting ? `${waiting} waiting for you` : "";
    button.dataset.waiting = String(waiting);
    if (session.id === this.currentId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}
