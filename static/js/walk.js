// The session list a page at a time (GET /api/sessions?limit=&cursor=, with the person's filters):
// the store holds the sessions fetched so far, plus any the page learnt of otherwise (a live update,
// a search hit, one waiting for the person); the list shows those that belong to the walk: the ones
// a page returned, and, without a project filter, every one ordered before the last session fetched
// (a live update moves a session to the top, so it belongs there without a fetch). The project of a
// session is known only from the server, so under a project filter new and moved sessions come from
// a fresh first page.

import { json } from "./api.js";
import { fromApi } from "./store.js";

export const PAGE = 100;
const HEAD_DELAY_MS = 250; // live updates within this time share one fresh first page

export class Walk {
  constructor(store, changed) {
    this.store = store;
    this.changed = changed; // the list must be drawn again
    this.filters = { active: null, waiting: null, project: null };
    this.epoch = 0;
    this.headTimer = 0;
    this.reset();
  }

  reset() {
    this.epoch += 1;
    this.walked = new Set();
    this.cursor = null;
    this.frontier = null; // the last session fetched: {updatedAt, id}
    this.complete = false;
    this.loading = false;
    this.failed = false;
  }

  get filtered() {
    return Object.values(this.filters).some((value) => value !== null);
  }

  query(limit, cursor) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    for (const [name, value] of Object.entries(this.filters)) if (value !== null) query.set(name, String(value));
    return `/api/sessions?${query}`;
  }

  // The first page, from scratch. `replace`: the store holds only it afterwards (a start, a resync:
  // what the page knew may be gone); else it is added to what the store holds (other filters).
  async first(replace) {
    this.reset();
    const epoch = this.epoch;
    this.loading = true;
    this.changed();
    const page = await json("GET", this.query(PAGE));
    if (epoch !== this.epoch) return;
    if (replace) this.store.replaceAll(page.items.map(fromApi));
    else for (const item of page.items) this.store.upsert(fromApi(item));
    this.take(page);
  }

  // The next page, when the person scrolls to the end of what is shown.
  async next() {
    if (this.loading || this.complete || this.cursor === null) return;
    const epoch = this.epoch;
    this.loading = true;
    this.changed();
    let page;
    try {
      page = await json("GET", this.query(PAGE, this.cursor));
    } catch {
      if (epoch === this.epoch) {
        this.loading = false;
        this.failed = true; // the "more" button stays, a click tries again
        this.changed();
      }
      return;
    }
    if (epoch !== this.epoch) return;
    for (const item of page.items) if (!this.store.get(item.id)) this.store.upsert(fromApi(item));
    this.take(page);
  }

  take(page) {
    for (const item of page.items) this.walked.add(item.id);
    const last = page.items.at(-1);
    if (last) this.frontier = { updatedAt: Date.parse(last.updated_at), id: last.id };
    this.cursor = page.next_cursor;
    this.complete = page.next_cursor === null;
    this.loading = false;
    this.failed = false;
    this.changed();
  }

  // Sessions the page holds that the filtered list has not returned (a project filter): a fresh
  // first page (soon, once for a burst of updates) says which belong.
  refreshHead() {
    if (this.headTimer) return;
    const epoch = this.epoch;
    this.headTimer = setTimeout(async () => {
      this.headTimer = 0;
      let page;
      try {
        page = await json("GET", this.query(PAGE));
      } catch {
        return; // the next update tries again
      }
      if (epoch !== this.epoch) return;
      for (const item of page.items) {
        this.walked.add(item.id);
        if (!this.store.get(item.id)) this.store.upsert(fromApi(item));
      }
      this.changed();
    }, HEAD_DELAY_MS);
  }

  // Whether the list shows this session now.
  shows(session) {
    const { active, waiting, project } = this.filters;
    if (active !== null && session.active !== active) return false;
    if (waiting !== null && (this.store.waitingFor(session.id) > 0) !== waiting) return false;
    if (this.walked.has(session.id)) return true;
    if (project !== null) return false;
    const f = this.frontier;
    return this.complete || (f !== null && (session.updatedAt > f.updatedAt || (session.updatedAt === f.updatedAt && session.id >= f.id)));
  }
}
