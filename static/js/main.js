// The page: token handling, the two screens (token, workspace), and the wiring between the
// websocket, the session list and the open session. Every action goes through the management API;
// the websocket then tells every open page, this one included, what changed. What waits for the
// person (pending approvals, Claude sessions awaiting them) is counted in the top bar and the tab
// title, and told by a desktop notification while the tab is hidden. The list arrives a page at a
// time (walk.js); a session the page does not hold yet (an update about it, a search hit, a link) is
// fetched alone when needed.

import { ApiError, configure, describeErrors, json, request } from "./api.js";
import { h, setUserText, userText } from "./dom.js";
import { Live } from "./live.js";
import { markdownReady, normalize } from "./messages.js";
import { notify } from "./notify.js";
import { Search } from "./search.js";
import { SessionList } from "./sessions.js";
import { Settings } from "./settings.js";
import { SessionStore, applyActivity, applyUpdate, fromApi, label, requestFromApi } from "./store.js";
import { UsageView } from "./usage.js";
import { SessionView } from "./view.js";
import { Walk } from "./walk.js";

const TOKEN_KEY = "switchboard.token";
const PROMPT_LIMIT = 8000;
const $ = (id) => document.getElementById(id);

let live = null;
let pending = null; // updates held back while the session list is being fetched
let fetches = 0; // list fetches in flight: updates wait until the last one has landed
let listed = false; // the list has been fetched at least once since the token was given
let epoch = 0; // bumped when the token changes: answers asked for with the previous one are dropped
let caughtUp = false; // past the replay: updates now are news (worth a notification)
let wanted = null; // a session a link (#session=ID) or a push notification asked to open
const TITLE = document.title;

const store = new SessionStore((change) => sessions.changed(change));
const walk = new Walk(store, () => sessions.schedule());
const sessions = new SessionList({
  list: $("session-list"),
  empty: $("sessions-empty"),
  filteredEmpty: $("sessions-filtered-empty"),
  count: $("session-count"),
  more: $("sessions-more"),
  pane: $("session-list-pane"),
}, store, walk, (id) => openSession(id));
const view = new SessionView({
  scroller: $("message-scroller"),
  log: $("message-log"),
  list: $("message-list"),
  older: $("older-button"),
  newer: $("newer-button"),
  start: $("history-start"),
  title: $("session-title"),
  subtitle: $("session-subtitle"),
  hold: $("hold-switch"),
  holdLabel: $("hold-label"),
  running: $("running"),
  requests: $("requests"),
  deliveries: $("deliveries"),
  deliveriesList: $("deliveries-list"),
  usage: $("session-usage"),
}, store, decide);
const settings = new Settings();
const usage = new UsageView({
  screen: $("usage-screen"),
  heading: $("usage-heading"),
  close: $("usage-close"),
  link: $("usage-link"),
  problem: $("usage-problem"),
  empty: $("usage-empty"),
  data: $("usage-data"),
  totals: $("usage-totals"),
  chart: $("usage-chart"),
  measures: document.querySelectorAll("input[name=usage-measure]"),
  sessions: $("usage-sessions"),
}, (id) => (store.get(id) ? label(store.get(id)) : null));
const search = new Search({
  form: $("search-form"),
  input: $("search-input"),
  panel: $("search-panel"),
  list: $("search-results"),
  status: $("search-status"),
  more: $("search-more"),
  close: $("search-close"),
}, (id, seq) => openSession(id, seq));

// --- token and screens ------------------------------------------------------------------------

function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: the person pastes the token each visit
  }
}

function storeToken(token) {
  try {
    if (token === null) localStorage.removeItem(TOKEN_KEY);
    else localStorage.setItem(TOKEN_KEY, token);
  } catch {
    // storage disabled: the token lives for this page only
  }
  currentToken = token;
}

let currentToken = null;
configure({ token: () => currentToken, unauthorized: () => rejectToken() });

function showScreen(name) {
  document.body.dataset.screen = name;
  $("token-screen").hidden = name !== "token";
  $("workspace").hidden = name === "token";
  $("account-actions").hidden = name === "token";
  $("search-form").hidden = name === "token";
  $("menu-button").hidden = name === "token";
  if (name === "token") search.close(false);
}

function showTokenScreen(problem) {
  live?.stop();
  live = null;
  epoch += 1;
  view.close();
  store.replaceAll([]);
  walk.reset();
  showWaiting();
  showAccount(null);
  setConnection("offline", "Not connected");
  $("token-problem").textContent = problem || "";
  $("token-problem").hidden = !problem;
  showScreen("token");
  $("token-input").value = "";
  $("token-input").focus();
}

function rejectToken() {
  if (currentToken === null) return;
  storeToken(null);
  showTokenScreen("The server did not accept the saved token: it may have been revoked or mistyped. " +
    "Paste a valid token to continue.");
}

function start(token) {
  live?.stop();
  if (view.id !== null) closeSession();
  store.replaceAll([]);
  walk.reset();
  showWaiting();
  storeToken(token);
  epoch += 1;
  pending = null;
  fetches = 0;
  listed = false;
  showScreen("list");
  usage.route();
  showAccount(null);
  caughtUp = false;
  live = new Live(token, {
    update: (data) => (pending ? pending.push(data) : update(data)),
    ephemeral: activity,
    ready: ({ refetch }) => {
      // Asked once the websocket has taken the token: a refused token is told by the websocket (4401).
      const asked = epoch;
      json("GET", "/api/me").then((me) => asked === epoch && showAccount(me), () => {});
      caughtUp = true;
      if (refetch) refetchAll();
    },
    status: (state, retryIn) => {
      if (state !== "connected") caughtUp = false;
      setConnection(state, state === "connected" ? "Connected"
        : state === "connecting" ? "Connecting…"
          : retryIn ? `Reconnecting (next try in ${retryIn} s)…` : "Reconnecting…");
      // The websocket may be blocked (a proxy) while HTTP works: show the list rather than nothing.
      if (state === "reconnecting" && !listed && !pending) refetchAll();
    },
    unauthorized: rejectToken,
  });
  live.start();
}

function setConnection(state, text) {
  const element = $("connection");
  element.dataset.state = state;
  if (element.textContent !== text) element.textContent = text;
}

function announce(text) {
  $("announcer").textContent = text;
}

// --- keeping up with the server ------------------------------------------------------------------

// After the first `ready` or a `resync`: the list (and the open session) from scratch. Updates that
// arrive meanwhile wait, then apply on top of the fetched state (they are all idempotent).
async function refetchAll() {
  const asked = epoch;
  fetches += 1;
  pending = pending || [];
  let waiting = null;
  let requests = null;
  try {
    // The first page of the list, then what waits for the person wherever it is in the list (asked
    // second: without an index on waiting, a large account's answer takes a scan the page need not wait for).
    [, { items: requests }] = await Promise.all([walk.first(true), json("GET", "/api/requests?status=pending")]);
    ({ items: waiting } = await json("GET", "/api/sessions?waiting=true&limit=500"));
  } catch (error) {
    if (asked === epoch && (!(error instanceof ApiError) || error.status !== 401)) {
      announce(`Could not load sessions: ${error.message}`);
    }
  }
  if (asked !== epoch) return; // another token's answer: start() has reset the counters
  if (waiting) {
    for (const session of waiting) if (!store.get(session.id)) store.upsert(fromApi(session));
    store.replacePending(requests.map(requestFromApi));
    listed = true;
    showWaiting();
    loadProjects();
    requestAnimationFrame(() => setTimeout(markdownReady)); // after the list's first paint
  }
  fetches -= 1;
  if (fetches === 0) {
    const held = pending;
    pending = null;
    held.forEach(update);
  }
  if (view.id !== null) {
    if (store.get(view.id)) {
      view.show();
      await view.reload();
    } else {
      closeSession("The open session no longer exists.");
    }
  }
  openWanted();
}

// The reducer (store.js) changes the state; what it means for the open session is handled here.
function update(data) {
  const effect = applyUpdate(store, data);
  if (!effect) return;
  // A presence change alone does not move a session in the list: only news about it is worth a fetch.
  const presence = data.body.t === "update-session" && "active" in data.body && data.body.awaitingMessage !== true;
  const about = presence ? null : effect.message?.sid ?? effect.changed ?? effect.request?.sid;
  if (about && !store.get(about)) fetchSession(about); // moved to the top of a list not fetched that far
  else if (about && walk.filters.project !== null && !walk.walked.has(about)) walk.refreshHead();
  if ("deletedAll" in effect) walk.first(true).catch(() => {});
  showWaiting();
  if (data.body.usage) usage.changed();
  if (caughtUp) tell(data.body, effect);
  if (view.id === null) return;
  if (effect.message?.sid === view.id) view.add(normalize(effect.message.message));
  else if (effect.changed === view.id) view.show();
  else if (effect.request?.sid === view.id) {
    view.showRequests();
    if (effect.created && effect.request.status === "pending") announce(`Claude asks to use ${effect.request.tool || "a tool"}.`);
  }
  else if (effect.delivered?.sid === view.id) view.deliver(effect.delivered.id, effect.delivered.at);
  else if (effect.deleted === view.id) closeSession("The open session was deleted.");
  else if ("deletedAll" in effect) closeSession("Every session was deleted.");
}

function activity(data) {
  if (applyActivity(store, data)?.changed === view.id && view.id !== null) view.showHeader();
}

// --- waiting for you ------------------------------------------------------------------------------

function showWaiting() {
  const count = store.waiting;
  const button = $("waiting-button");
  const text = `${count} waiting for you`;
  button.hidden = count === 0;
  if (button.textContent !== text) {
    // A phone shows "N waiting" (app.css); the name read out stays whole.
    button.replaceChildren(`${count} waiting`, h("span", { class: "waiting-rest" }, " for you"));
  }
  const title = count ? `(${count}) ${TITLE}` : TITLE;
  if (document.title !== title) document.title = title;
}

// A live update that needs the person, told while the tab is hidden (notify.js decides whether).
function tell(body, effect) {
  let sid = null;
  let note = null;
  if (effect.created && effect.request.status === "pending") {
    sid = effect.request.sid;
    const input = effect.request.input;
    const what = input && typeof input === "object" ? input.command ?? input.file_path ?? "" : "";
    note = { title: `Approval requested: ${effect.request.tool || "a tool"}`, detail: String(what).slice(0, 120) };
  } else if (body.t === "update-session" && body.awaitingMessage === true) {
    sid = body.id;
    note = { title: store.get(sid)?.hold ? "Waiting for your message" : "Claude is waiting for you", detail: "" };
  }
  const session = sid && store.get(sid);
  if (!session) return;
  const name = label(session).slice(0, 80);
  notify({ title: note.title, body: note.detail ? `${name}: ${note.detail}` : name, tag: sid }, () => openSession(sid));
}

// A decision from a request card. Someone else may have decided first (another tab, another
// device, the terminal): the card then shows what really happened.
async function decide(request, decision, reason) {
  const path = `/api/sessions/${encodeURIComponent(request.sid)}/requests/${encodeURIComponent(request.id)}/decision`;
  try {
    store.setRequest(requestFromApi(await json("POST", path, reason ? { decision, reason } : { decision })));
  } catch (error) {
    if (!(error instanceof ApiError && error.error === "request_not_pending")) throw error;
    store.setRequest({ ...request, status: error.body.status });
    announce(`This request was already ${error.body.status}.`);
  }
  showWaiting();
  if (request.sid === view.id) view.showRequests();
}

// The session a link or a notification asked for, once the list has been fetched.
function openWanted() {
  if (wanted === null || !listed) return;
  const id = wanted;
  wanted = null;
  openSession(id);
}

// One session the page does not hold, fetched alone (without its messages). Resolves to whether it
// is now held; asked once at a time per session.
const fetching = new Map();
function fetchSession(id) {
  if (!fetching.has(id)) {
    const asked = epoch;
    fetching.set(id, json("GET", `/api/sessions/${encodeURIComponent(id)}?messages=false`).then((session) => {
      if (asked === epoch) store.upsert(fromApi(session));
      return asked === epoch;
    }, () => false).finally(() => fetching.delete(id)));
  }
  return fetching.get(id);
}

// --- opening and closing a session ------------------------------------------------------------

// `seq`: open at this message (a search hit) instead of the newest.
async function openSession(id, seq = null) {
  if (!store.get(id) && !(await fetchSession(id))) {
    announce("The session the link named does not exist (or belongs to another account).");
    return;
  }
  usage.leave();
  sessions.setCurrent(id);
  showScreen("session");
  $("session-view").hidden = false;
  $("no-session").hidden = true;
  $("send-error").hidden = true;
  view.open(id, seq);
  if (seq === null) $("session-title").focus();
}

function closeSession(message) {
  const id = view.id;
  view.close();
  sessions.setCurrent(null);
  $("session-view").hidden = true;
  $("no-session").hidden = false;
  showScreen("list");
  if (message) announce(message);
  if (id && store.get(id)) sessions.focus(id);
  else $("sessions-heading").focus();
}

// --- dialogs ------------------------------------------------------------------------------------

// A dialog's form runs `action`; on success the dialog closes (then runs what the action returned, so
// focus can move after the dialog has put it back), on failure its problem line says why.
function dialog(id, action) {
  const element = $(id);
  const form = element.querySelector("form");
  const problem = form.querySelector(".problem");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const then = await action();
      element.close();
      then?.();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return element.close();
      problem.textContent = [error.message, ...describeErrors(error.errors)].join(" ");
      problem.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  for (const button of form.querySelectorAll("[data-close]")) button.addEventListener("click", () => element.close());
  return (prepare) => {
    if (problem) problem.hidden = true;
    prepare?.();
    element.showModal();
  };
}

class Refused extends Error {}

const sessionPath = () => `/api/sessions/${encodeURIComponent(view.id)}`;

const openRename = dialog("rename-dialog", async () => {
  const updated = await json("PATCH", sessionPath(), { title: $("rename-input").value });
  store.upsert(fromApi(updated));
  view.show();
  announce(`Renamed to ${updated.title}.`);
});

const openPrompt = dialog("prompt-dialog", async () => {
  const updated = await json("PATCH", `${sessionPath()}/system-prompt`, { system_prompt: $("prompt-input").value });
  store.upsert(fromApi(updated));
  view.show();
  announce(updated.system_prompt ? "System prompt saved." : "System prompt cleared.");
});

const openDelete = dialog("delete-dialog", async () => {
  const id = view.id;
  await json("DELETE", sessionPath());
  store.remove(id);
  return () => closeSession("Session deleted.");
});

const openDeleteAll = dialog("delete-all-dialog", async () => {
  if ($("delete-all-input").value.trim() !== "delete") {
    $("delete-all-input").focus();
    throw new Refused("Nothing was deleted: type the word delete to confirm.");
  }
  const { deleted } = await json("DELETE", "/api/sessions");
  store.replaceAll([]);
  return () => closeSession(`Deleted ${deleted} session${deleted === 1 ? "" : "s"}.`);
});

const showImportProblem = dialog("import-dialog", async () => {});

function updateCounter() {
  const length = $("prompt-input").value.length;
  const counter = $("prompt-counter");
  counter.textContent = `${length.toLocaleString()} / ${PROMPT_LIMIT.toLocaleString()} characters`;
  counter.classList.toggle("at-limit", length >= PROMPT_LIMIT);
}

// --- actions ------------------------------------------------------------------------------------

async function send(event) {
  event.preventDefault();
  const input = $("send-input");
  const content = input.value;
  if (!content.trim() || view.id === null) return;
  const button = $("send-button");
  button.disabled = true;
  $("send-error").hidden = true;
  try {
    const message = await json("POST", `${sessionPath()}/messages`, { role: "user", content });
    view.add(normalize(message), true);
    input.value = "";
  } catch (error) {
    $("send-error").textContent = `Not sent: ${error.message}`;
    $("send-error").hidden = false;
  } finally {
    button.disabled = false;
    input.focus();
  }
}

async function setHold() {
  const toggle = $("hold-switch");
  const hold = toggle.checked;
  toggle.disabled = true;
  try {
    store.upsert(fromApi(await json("PUT", `${sessionPath()}/hold`, { hold })));
    announce(hold ? "Hold on: when Claude stops, it waits for your next message." : "Hold off.");
  } catch (error) {
    toggle.checked = !hold;
    announce(`Hold not changed: ${error.message}`);
  } finally {
    toggle.disabled = false;
    if (view.id !== null) view.showHeader();
  }
}

async function exportSession() {
  const id = view.id;
  const button = $("export-button");
  button.disabled = true;
  try {
    const response = await request("GET", `${sessionPath()}/export`);
    const blob = await response.blob();
    const named = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = named ? named[1] : `switchboard-session-${id}.json`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    announce("Export downloaded.");
  } catch (error) {
    announce(`Export failed: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

async function importFile() {
  const input = $("import-file");
  const file = input.files[0];
  input.value = ""; // the same file can be picked again after a fix
  if (!file) return;
  let problem;
  try {
    const text = await file.text();
    try {
      JSON.parse(text);
    } catch (error) {
      throw new Refused(`${file.name} is not a JSON file (${error.message}).`);
    }
    const result = await json("POST", "/api/sessions/import", text);
    store.upsert(fromApi(result.session));
    openSession(result.session.id);
    announce(`Imported ${label(store.get(result.session.id))} with ${result.imported_messages} messages.`);
    return;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    problem = error;
  }
  showImportProblem(() => {
    $("import-message").textContent = `${file.name} was not imported: ${problem.message}`;
    const list = $("import-errors");
    list.replaceChildren(...describeErrors(problem.errors).map((line) => h("li", {}, line)));
  });
}

// --- the list: filters, a new session, how agents connect ---------------------------------------

async function applyFilters() {
  walk.filters = {
    active: $("filter-active").checked ? true : null,
    waiting: $("filter-waiting").checked ? true : null,
    project: $("filter-project").value || null,
  };
  try {
    await walk.first(false);
  } catch (error) {
    announce(`Could not load sessions: ${error.message}`);
  }
}

// The project directories the account's sessions name, for the project filter.
async function loadProjects() {
  const select = $("filter-project");
  let items;
  try {
    ({ items } = await json("GET", "/api/projects"));
  } catch {
    return; // the filter offers what it had
  }
  const chosen = select.value;
  const options = items.map((p) => h("option", { value: p.directory }, `${p.directory} (${p.sessions.toLocaleString()})`));
  if (chosen && !items.some((p) => p.directory === chosen)) options.unshift(h("option", { value: chosen }, chosen));
  select.replaceChildren(h("option", { value: "" }, "All projects"), ...options);
  select.value = chosen;
}

async function newSession() {
  const button = $("new-session-button");
  button.disabled = true;
  try {
    const session = store.upsert(fromApi(await json("POST", "/api/sessions", {})));
    walk.walked.add(session.id);
    openSession(session.id);
    announce("New session started.");
  } catch (error) {
    announce(`No session was started: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

// The empty list shows how an agent connects to this very server.
const origin = location.origin;
$("connect-claude").textContent = `python app.py claude-settings --url ${origin} > switchboard-hooks.json`;
$("connect-client").textContent = `curl -O ${origin}/client.py && python client.py run --url ${origin} --token $TOKEN -- ping -c 3 127.0.0.1`;

// --- wiring -----------------------------------------------------------------------------------

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (token) start(token);
});
$("forget-token-button").addEventListener("click", () => {
  storeToken(null);
  showTokenScreen();
});
$("back-button").addEventListener("click", () => closeSession());
$("send-form").addEventListener("submit", send);
$("send-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.altKey && !event.metaKey && !event.isComposing) {
    event.preventDefault();
    $("send-form").requestSubmit();
  }
});
$("rename-button").addEventListener("click", () => openRename(() => {
  $("rename-input").value = store.get(view.id).title || "";
}));
$("prompt-button").addEventListener("click", () => openPrompt(() => {
  $("prompt-input").value = store.get(view.id).systemPrompt || "";
  updateCounter();
}));
$("prompt-input").addEventListener("input", updateCounter);
$("delete-button").addEventListener("click", () => openDelete(() => {
  $("delete-description").replaceChildren("“", userText(label(store.get(view.id))), "” and all its messages will be deleted.");
}));
$("delete-all-button").addEventListener("click", () => openDeleteAll(() => {
  $("delete-all-input").value = "";
}));
$("export-button").addEventListener("click", exportSession);
$("hold-switch").addEventListener("change", setHold);
$("settings-button").addEventListener("click", () => settings.open());
$("waiting-button").addEventListener("click", () => {
  const [first] = store.waitingSessions();
  if (first) openSession(first);
});
// A push notification clicked while this tab is open (the service worker posts it here).
navigator.serviceWorker?.addEventListener("message", (event) => {
  if (event.data?.type === "open-session" && typeof event.data.sessionId === "string") {
    wanted = event.data.sessionId;
    openWanted();
  }
});
$("import-button").addEventListener("click", () => $("import-file").click());
$("new-session-button").addEventListener("click", newSession);
for (const id of ["filter-active", "filter-waiting", "filter-project"]) $(id).addEventListener("change", applyFilters);
$("filter-project").addEventListener("focus", loadProjects);
// Phones: the account's actions fold behind one button, so the top bar stays one row.
function showMenu(open) {
  $("menu-button").setAttribute("aria-expanded", String(open));
  document.body.classList.toggle("menu-open", open);
}
$("menu-button").addEventListener("click", () => showMenu($("menu-button").getAttribute("aria-expanded") !== "true"));
// A chosen action folds the menu again, so what it opens has the screen.
$("account-actions").addEventListener("click", (event) => {
  if (event.target.closest("a, button")) showMenu(false);
});
$("import-file").addEventListener("change", importFile);

// --- the account, and links that carry a token ---------------------------------------------------

function showAccount(me) {
  const element = $("account");
  element.hidden = !me;
  if (!me) return;
  setUserText($("account-name"), me.account);
  element.title = `Token “${me.token_name}”`;
}

// Who a token belongs to: {account, token_name}, null when the server refuses it, undefined when the
// server cannot be asked.
async function whoIs(token) {
  try {
    return await json("GET", "/api/me", undefined, { as: token });
  } catch (error) {
    return error instanceof ApiError && error.status === 401 ? null : undefined;
  }
}

// A link's token replaces the one this browser keeps only when the person agrees, or when both belong
// to the same account: a link someone else made must not quietly put this page into their account,
// where what the person sends would go to them. Keeping the current token leaves a running page as it is.
async function adopt(linked) {
  const current = storedToken();
  const keep = (why) => {
    if (!live) start(current);
    if (why) announce(why);
  };
  if (current === linked) return keep();
  if (!current) return start(linked);
  if ($("switch-dialog").open) return; // one question at a time: the first link asked about stands
  const [mine, theirs] = await Promise.all([whoIs(current), whoIs(linked)]);
  if (mine === null) return start(linked); // the kept token no longer works: nothing to protect
  if (theirs === null) return keep("The link's token was not accepted; this page stays as it was.");
  if (mine && theirs && mine.account === theirs.account) return start(linked);
  const name = (me) => (me ? userText(me.account) : "an account the server could not name right now");
  $("switch-current").replaceChildren(name(mine));
  $("switch-linked").replaceChildren(name(theirs));
  const dialog = $("switch-dialog");
  dialog.onclose = () => (dialog.returnValue === "switch" ? start(linked)
    : keep("Kept the current account; the link's token was not saved."));
  dialog.returnValue = "";
  dialog.showModal();
  $("switch-keep").focus();
}

// The first-run link carries the token in the fragment (never sent to the server); take it out of
// the address bar and the history before anything else.
// A `#session=ID` link (a notification's, a webhook's Click) opens that session once it is listed.
function tokenFromLink() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const linked = fragment.get("token");
  if (fragment.has("session")) wanted = fragment.get("session");
  if (linked || fragment.has("session")) history.replaceState(null, "", location.pathname + location.search);
  return linked;
}

window.addEventListener("hashchange", () => {
  const linked = tokenFromLink();
  if (linked) adopt(linked);
  openWanted();
});

const linked = tokenFromLink();
if (linked) adopt(linked);
else if (storedToken()) start(storedToken());
else showTokenScreen();
