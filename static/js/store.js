// What the page knows about every session, and the reducer that applies the server's updates to it.
// No DOM here: views subscribe to the store's changes and draw them (sessions.js, view.js), so the
// state can be driven and checked on its own. Sessions arrive in two shapes (management API:
// snake_case and ISO times; websocket updates: camelCase and ms); both become one shape here.

import { dateTime } from "./format.js";

export function fromApi(s) {
  return {
    id: s.id,
    title: s.title,
    tag: s.tag,
    systemPrompt: s.system_prompt,
    active: s.active,
    thinking: false,
    createdAt: Date.parse(s.created_at),
    updatedAt: Date.parse(s.updated_at),
  };
}

export function fromEvent(body) {
  return {
    id: body.id,
    title: body.title ?? null,
    tag: body.tag ?? null,
    systemPrompt: null,
    active: body.active,
    thinking: false,
    createdAt: body.createdAt,
    updatedAt: body.updatedAt,
  };
}

export function label(session) {
  return session.title || session.tag || `Session started ${dateTime(session.createdAt)}`;
}

export function activity(session) {
  if (!session.active) return "idle";
  return session.thinking ? "thinking" : "active";
}

// Most recently updated first; the id (time-ordered) breaks ties, newest first.
const before = (a, b) => a.updatedAt > b.updatedAt || (a.updatedAt === b.updatedAt && a.id > b.id);

// Sessions by id, plus the same sessions kept in display order. An update moves one session by two
// binary searches, so an event costs the same with 100 sessions or 100,000: nothing is re-sorted.
export class SessionStore {
  // listener(change): {type: "upsert" | "remove", id} or {type: "reset"} (everything may have changed)
  constructor(listener = () => {}) {
    this.byId = new Map();
    this.order = [];
    this.listener = listener;
  }

  get(id) {
    return this.byId.get(id);
  }

  get size() {
    return this.order.length;
  }

  // The first `count` sessions in display order.
  first(count) {
    return this.order.slice(0, count);
  }

  replaceAll(sessions) {
    this.byId = new Map(sessions.map((s) => [s.id, s]));
    this.order = [...this.byId.values()].sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
    this.listener({ type: "reset" });
  }

  // A new session, or one we already hold (a replayed new-session, an answer to our own change): merge.
  upsert(session) {
    const known = this.byId.get(session.id);
    if (known) return this.patch(session.id, { ...session, thinking: known.thinking });
    this.byId.set(session.id, session);
    this.order.splice(this.position(session), 0, session);
    this.listener({ type: "upsert", id: session.id });
    return session;
  }

  // Changes to a session we do not hold (already deleted, or not fetched yet) are dropped.
  patch(id, changes) {
    const known = this.byId.get(id);
    if (!known) return null;
    const moves = ("updatedAt" in changes && changes.updatedAt !== known.updatedAt);
    if (moves) this.order.splice(this.position(known), 1);
    Object.assign(known, changes);
    if (moves) this.order.splice(this.position(known), 0, known);
    this.listener({ type: "upsert", id });
    return known;
  }

  remove(id) {
    const known = this.byId.get(id);
    if (!known) return;
    this.order.splice(this.position(known), 1);
    this.byId.delete(id);
    this.listener({ type: "remove", id });
  }

  // Where `session` is (or would go) in display order.
  position(session) {
    let low = 0;
    let high = this.order.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (before(this.order[middle], session)) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}

// Applies one durable update ({body, createdAt}) to the store and says what it means for an open
// session: {message: {sid, message}}, {changed: id}, {deleted: id} or {deletedAll: n}; null for nothing.
export function applyUpdate(store, { body, createdAt }) {
  switch (body.t) {
    case "new-session":
      store.upsert(fromEvent(body));
      return { changed: body.id };
    case "update-session": {
      const changes = {};
      if ("title" in body) changes.title = body.title;
      if ("systemPrompt" in body) changes.systemPrompt = body.systemPrompt;
      if ("active" in body) {
        changes.active = body.active;
        if (!body.active) changes.thinking = false;
      } else {
        changes.updatedAt = createdAt; // every other change bumps the session's updated_at
      }
      store.patch(body.id, changes);
      return { changed: body.id };
    }
    case "delete-session":
      store.remove(body.sid);
      return { deleted: body.sid };
    case "delete-all":
      // Every session the account had before this update is gone. Sessions made after it come as
      // their own new-session updates, later in seq order, so emptying the store now is exact.
      store.replaceAll([]);
      return { deletedAll: body.deleted };
    case "new-message":
      store.patch(body.sid, { updatedAt: body.message.updatedAt });
      return { message: { sid: body.sid, message: body.message } };
    default:
      return null; // a kind this page does not know yet (a newer server): ignored, not an error
  }
}

// A presence heartbeat (ephemeral, not stored): the session's dot changes, its place does not.
export function applyActivity(store, data) {
  if (data.type !== "activity") return null;
  store.patch(data.id, { active: data.active, thinking: data.active && Boolean(data.thinking) });
  return { changed: data.id };
}
