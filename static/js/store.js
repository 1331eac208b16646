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
    agent: s.agent ?? null,
    hold: Boolean(s.hold),
    awaitingMessage: Boolean(s.awaiting_message),
    running: null,
    usage: s.usage ?? null,
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
    agent: body.agent ?? null,
    hold: Boolean(body.hold),
    running: null, // no awaitingMessage: a replayed new-session must not clear a known session's
  };
}

// A Claude Code permission request, from either shape (management API or a request update).
export function requestFromApi(r) {
  return {
    id: r.id,
    sid: r.session_id,
    tool: r.tool,
    input: r.input,
    suggestions: r.suggestions,
    status: r.status,
    reason: r.reason,
    createdAt: Date.parse(r.created_at),
    decidedAt: r.decided_at ? Date.parse(r.decided_at) : null,
  };
}

export function requestFromEvent(r) {
  return { id: r.id, sid: r.sid, tool: r.tool, input: r.input, suggestions: r.suggestions, status: r.status,
    reason: r.reason, createdAt: r.createdAt, decidedAt: r.decidedAt ?? null };
}

export const isClaude = (session) => session?.agent === "claude-code";

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
    this.requests = new Map(); // id -> request, every request this page has seen
    this.pending = new Map(); // session id -> Set of its pending request ids
    this.awaiting = new Set(); // ids of the sessions whose Claude waits for the person
  }

  // "Waiting for you": the pending requests plus the sessions awaiting a message.
  get waiting() {
    let count = this.awaiting.size;
    for (const ids of this.pending.values()) count += ids.size;
    return count;
  }

  // How many things this session waits on the person for (0: nothing).
  waitingFor(id) {
    return (this.pending.get(id)?.size ?? 0) + (this.awaiting.has(id) ? 1 : 0);
  }

  // The sessions that wait for the person, oldest wait first.
  waitingSessions() {
    const since = new Map();
    for (const [sid, ids] of this.pending) {
      for (const id of ids) since.set(sid, Math.min(since.get(sid) ?? Infinity, this.requests.get(id).createdAt));
    }
    for (const sid of this.awaiting) if (!since.has(sid)) since.set(sid, Infinity);
    return [...since.entries()].filter(([sid]) => this.byId.has(sid)).sort((a, b) => a[1] - b[1]).map(([sid]) => sid);
  }

  // A request, new or changed. A decided request never goes back to pending (updates may cross an
  // HTTP answer): the first outcome seen stands.
  setRequest(request) {
    const known = this.requests.get(request.id);
    if (known && known.status !== "pending" && request.status === "pending") return known;
    const merged = known ? Object.assign(known, request) : request;
    this.requests.set(merged.id, merged);
    const ids = this.pending.get(merged.sid) ?? new Set();
    if (merged.status === "pending") ids.add(merged.id);
    else ids.delete(merged.id);
    if (ids.size) this.pending.set(merged.sid, ids);
    else this.pending.delete(merged.sid);
    if (this.byId.has(merged.sid)) this.listener({ type: "upsert", id: merged.sid });
    return merged;
  }

  // Every pending request of the account, as fetched (after a start or a resync). One that was
  // pending and is not in the list was settled meanwhile: it is forgotten until its session's
  // requests are fetched again, rather than shown with an outcome this page does not know.
  replacePending(requests) {
    const fresh = new Set(requests.map((r) => r.id));
    for (const [sid, ids] of [...this.pending]) {
      for (const id of ids) if (!fresh.has(id)) this.requests.delete(id);
      this.pending.delete(sid);
      if (this.byId.has(sid)) this.listener({ type: "upsert", id: sid });
    }
    for (const request of requests) this.setRequest(request);
  }

  // The session's requests this page knows, oldest first.
  requestsOf(sid) {
    return [...this.requests.values()].filter((r) => r.sid === sid).sort((a, b) => a.createdAt - b.createdAt);
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
    this.awaiting = new Set(sessions.filter((s) => s.awaitingMessage).map((s) => s.id));
    for (const [id, request] of this.requests) if (!this.byId.has(request.sid)) this.requests.delete(id);
    for (const sid of this.pending.keys()) if (!this.byId.has(sid)) this.pending.delete(sid);
    this.order = [...this.byId.values()].sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
    this.listener({ type: "reset" });
  }

  // A new session, or one we already hold (a replayed new-session, an answer to our own change): merge.
  upsert(session) {
    const known = this.byId.get(session.id);
    if (known) return this.patch(session.id, { ...session, thinking: known.thinking, running: known.running });
    session.awaitingMessage ??= false;
    this.byId.set(session.id, session);
    if (session.awaitingMessage) this.awaiting.add(session.id);
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
    if (known.awaitingMessage) this.awaiting.add(id);
    else this.awaiting.delete(id);
    if (moves) this.order.splice(this.position(known), 0, known);
    this.listener({ type: "upsert", id });
    return known;
  }

  remove(id) {
    const known = this.byId.get(id);
    if (!known) return;
    this.order.splice(this.position(known), 1);
    this.byId.delete(id);
    this.awaiting.delete(id);
    this.pending.delete(id);
    for (const [rid, request] of this.requests) if (request.sid === id) this.requests.delete(rid);
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
      if ("hold" in body) changes.hold = body.hold;
      if ("usage" in body) changes.usage = body.usage;
      if ("active" in body || "awaitingMessage" in body || "usage" in body) {
        // Presence, waiting and usage are states, not edits: the session keeps its place in the list.
        if ("active" in body) changes.active = body.active;
        if (body.active === false) Object.assign(changes, { thinking: false, running: null });
        if ("awaitingMessage" in body) changes.awaitingMessage = body.awaitingMessage;
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
    case "update-message":
      return { delivered: { sid: body.sid, id: body.message.id, at: body.message.deliveredAt } };
    case "new-request":
    case "update-request":
      return { request: store.setRequest(requestFromEvent(body.request)), created: body.t === "new-request" };
    default:
      return null; // a kind this page does not know yet (a newer server): ignored, not an error
  }
}

// A presence heartbeat (ephemeral, not stored): the session's dot changes, its place does not.
export function applyActivity(store, data) {
  if (data.type !== "activity") return null;
  // A Claude Code tool call names its tool (PreToolUse); the next beat without one means it finished.
  const running = data.active && data.tool ? { tool: data.tool, detail: data.detail ?? null } : null;
  store.patch(data.id, { active: data.active, thinking: data.active && Boolean(data.thinking), running });
  return { changed: data.id };
}
