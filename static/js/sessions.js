// The session list: what the page knows about every session, and the <ul> that shows it, most
// recently updated first. Sessions arrive in two shapes (management API: snake_case and ISO times;
// websocket updates: camelCase and ms); both become one shape here.

import { dateTime, when } from "./format.js";

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

export class SessionList {
  constructor(listElement, emptyElement, countElement, onOpen) {
    this.list = listElement;
    this.empty = emptyElement;
    this.count = countElement;
    this.onOpen = onOpen;
    this.sessions = new Map();
    this.items = new Map(); // id -> <li>
    this.currentId = null;
  }

  get(id) {
    return this.sessions.get(id);
  }

  replaceAll(sessions) {
    this.sessions = new Map(sessions.map((s) => [s.id, s]));
    for (const [id, item] of this.items) {
      if (!this.sessions.has(id)) {
        item.remove();
        this.items.delete(id);
      }
    }
    this.render();
  }

  // A new session, or one we already hold (a replayed new-session, a fresh fetch): merge.
  upsert(session) {
    const known = this.sessions.get(session.id);
    this.sessions.set(session.id, known ? { ...known, ...session, thinking: known.thinking } : session);
    this.render();
  }

  // Changes to a session we do not hold (already deleted, or not fetched yet) are dropped.
  patch(id, changes) {
    const known = this.sessions.get(id);
    if (!known) return null;
    Object.assign(known, changes);
    this.render();
    return known;
  }

  remove(id) {
    this.sessions.delete(id);
    this.items.get(id)?.remove();
    this.items.delete(id);
    this.render();
  }

  setCurrent(id) {
    this.currentId = id;
    this.render();
  }

  focus(id) {
    this.items.get(id)?.querySelector("button").focus();
  }

  render() {
    const ordered = [...this.sessions.values()].sort((a, b) => b.updatedAt - a.updatedAt || (a.id < b.id ? 1 : -1));
    const focused = this.list.contains(document.activeElement) ? document.activeElement : null;
    let cursor = this.list.firstElementChild;
    for (const session of ordered) {
      const item = this.items.get(session.id) || this.create(session.id);
      this.fill(item, session);
      // Move only what is out of place: a moved node loses focus and costs a layout.
      if (item !== cursor) this.list.insertBefore(item, cursor);
      else cursor = cursor.nextElementSibling;
    }
    if (focused && document.activeElement !== focused && this.list.contains(focused)) focused.focus();
    this.empty.hidden = ordered.length > 0;
    this.count.textContent = ordered.length ? `(${ordered.length})` : "";
  }

  create(id) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "session-item";
    button.dataset.sessionId = id;
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.setAttribute("aria-hidden", "true");
    const text = document.createElement("span");
    text.className = "session-text";
    const name = document.createElement("span");
    name.className = "session-name";
    const meta = document.createElement("span");
    meta.className = "session-meta";
    text.append(name, meta);
    button.append(dot, text);
    button.addEventListener("click", () => this.onOpen(id));
    item.append(button);
    this.items.set(id, item);
    return item;
  }

  fill(item, session) {
    const button = item.firstElementChild;
    const state = activity(session);
    button.dataset.activity = state;
    const name = label(session);
    button.querySelector(".session-name").textContent = name;
    const details = [state, `updated ${when(session.updatedAt)}`];
    if (session.title && session.tag) details.unshift(session.tag);
    button.querySelector(".session-meta").textContent = details.join(" · ");
    if (session.id === this.currentId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}
