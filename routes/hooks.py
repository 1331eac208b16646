"""`POST /v1/hooks/claude`: Claude Code's own `http` hooks post every event here (see claude.py).

Claude Code waits for each hook before it goes on, so every event is one short write and a prompt
answer; only a PermissionRequest (an approval) and the Stop of a held session wait for a person. A
waiting hook holds no database connection and no transaction: it watches its session in the hub and
re-reads what it waits for when anything there changes. The server never opens a path a hook names.
"""
import socket
import time

from flask import Blueprint, current_app, g, request

import claude
import domain
import schemas
from events import hub
from models import db
from routes import ApiError, authenticate, endpoint, read_body

bp = Blueprint("hooks", __name__)
bp.before_request(authenticate)

# How often a waiting hook checks that Claude Code is still connected (a closed connection cancels).
POLL_SECONDS = 0.5
GONE = object()


@bp.errorhandler(domain.SessionNotFound)
def session_not_found(e):
    return ApiError(404, "session_not_found", "The session was deleted.").response()


@bp.post("/v1/hooks/claude")
@endpoint(body=schemas.claude_hook_schema, responses={200: schemas.HookAnswer})
def claude_hook(body):
    """One Claude Code hook event; the answer is what Claude Code should do (`{}`: nothing)."""
    handler = _HANDLERS.get(body["hook_event_name"], _other)
    return handler(body, claude.key(read_body()))


def _record(hook, key, **kwargs):
    message = kwargs.pop("message", None)
    if message is not None:
        role, content, metadata = message
        limit = schemas.limits.content_bytes
        if isinstance(content, str):  # text with a role: the bound every route and import apply
            content = claude.cut(content, schemas.MAX_TEXT_CHARS)
        kwargs["message"] = (role, claude.fit(content, limit),
                             None if metadata is None else claude.fit(metadata, limit))
    return domain.hook_event(g.account_id, hook, key, **kwargs)


def _input(hook):
    return claude.fit(hook.get("tool_input"), schemas.limits.content_bytes)


def _prompt(hook, key):
    done = _record(hook, key, message=claude.message(hook), cancel="all", deliver=True, instructions=True,
                   waiting=False)
    domain.presence.alive(done["session"], thinking=True)
    parts = [done["instructions"]] if done["instructions"] else []
    if done["delivered"]:
        parts.append(claude.steering(done["delivered"]))
    return claude.context("UserPromptSubmit", "\n\n".join(parts)) if parts else {}


def _session_start(hook, key):
    done = _record(hook, key, instructions=True, waiting=False)
    domain.presence.alive(done["session"])
    return claude.context("SessionStart", done["instructions"]) if done["instructions"] else {}


def _pre_tool(hook, key):
    done = _record(hook, key, waiting=False)
    tool = hook.get("tool_name") if isinstance(hook.get("tool_name"), str) else None
    domain.presence.alive(done["session"], thinking=True, tool=tool, detail=claude.detail(hook.get("tool_input")))
    return {}


def _post_tool(hook, key):
    # The tool ran (or failed): a permission request still pending for this very call was answered
    # elsewhere (in the terminal), so it is cancelled.
    tool = hook.get("tool_name") if isinstance(hook.get("tool_name"), str) else None
    done = _record(hook, key, message=claude.message(hook), cancel=(tool, _input(hook)), waiting=False)
    domain.presence.alive(done["session"], thinking=True)
    return {}


def _notification(hook, key):
    """Claude asks for the person (a permission dialog, an idle prompt, a question): it waits for them,
    unless a pending request of this session already asks."""
    done = _record(hook, key, message=claude.message(hook), waiting=True if claude.waits(hook) else None)
    domain.presence.alive(done["session"])
    return {}


def _subagent_stop(hook, key):
    done = _record(hook, key, message=claude.message(hook), waiting=False)
    domain.presence.alive(done["session"], thinking=True)
    return {}


def _session_end(hook, key):
    done = _record(hook, key, message=claude.message(hook), cancel="all", waiting=False)
    domain.presence.end(done["session"])
    return {}


def _other(hook, key):
    """An event this server does not know (Claude Code adds some with releases): a heartbeat."""
    domain.presence.alive(_record(hook, key)["session"])
    return {}


def _permission(hook, key):
    """A tool call that needs permission: a request the person decides in the browser, waited on."""
    tool = hook.get("tool_name") if isinstance(hook.get("tool_name"), str) else None
    suggestions = hook.get("permission_suggestions")
    done = _record(hook, key, request=(tool, _input(hook), None if suggestions is None else claude.fit(
        suggestions, schemas.limits.content_bytes)), waiting=False)
    session, pending = done["session"], done["request"]
    domain.presence.alive(session)
    try:
        if pending["status"] == "pending":
            deadline = time.monotonic() + current_app.config["APPROVAL_WAIT_SECONDS"]
            outcome = _wait(session, deadline, lambda: _decided(pending["id"]))
            if outcome is None or outcome is GONE:
                try:
                    pending = domain.settle_request(g.account_id, pending["id"],
                                                    "expired" if outcome is None else "cancelled")
                except domain.RequestNotPending:  # decided at the last moment: the decision stands
                    pending = domain.find_request(g.account_id, pending["id"])
            else:
                pending = outcome
    except domain.RequestNotFound:  # the session was deleted meanwhile, and its requests with it
        return {}
    if pending["status"] == "allowed":
        return claude.allow()
    if pending["status"] == "denied":
        return claude.deny(pending["reason"])
    return {}  # expired or cancelled: Claude Code asks in its terminal, as it would without us


def _decided(request_id):
    found = domain.find_request(g.account_id, request_id)
    return None if found["status"] == "pending" else found


def _stop(hook, key):
    """Claude finished its turn: what the person queued meanwhile makes it continue; otherwise it waits
    for the person (awaiting_message), and a held session's Stop waits here for their next message."""
    done = _record(hook, key, message=claude.message(hook), cancel="all", deliver=True, waiting=True)
    session, delivered = done["session"], done["delivered"]
    domain.presence.alive(session, thinking=False)
    if not delivered and session.hold:
        deadline = time.monotonic() + current_app.config["HOLD_WAIT_SECONDS"]
        outcome = _wait(session, deadline, lambda: _next_message(session.id))
        delivered = outcome if isinstance(outcome, list) else []
        if delivered:  # Claude goes on; otherwise (timeout, hold off, hung up) it stopped and still waits
            domain.set_awaiting(g.account_id, session.id, False)
    return claude.block(claude.steering(delivered)) if delivered else {}


def _next_message(session_id):
    """Delivered messages, [] once hold is switched off, None while there is nothing yet."""
    try:
        delivered = domain.deliver_queued(g.account_id, session_id)
        if delivered or not domain.find_session(g.account_id, session_id).hold:
            return delivered
    except domain.SessionNotFound:  # deleted meanwhile: nothing will come
        return []
    return None


def _wait(session, deadline, settled):
    """What `settled()` returns once it is not None; None at the deadline; GONE if Claude Code hung up.

    The session is watched before each read, so a change committed after the read always wakes the
    wait. While waiting the pooled connection is given back: thousands of hooks may wait at once.
    """
    with hub.watch(g.account_id, session.id) as watcher:
        while True:
            result = settled()
            if result is not None:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            db.close()
            try:
                while not watcher.wait(min(remaining, POLL_SECONDS)):
                    if _hung_up():
                        return GONE
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
            finally:
                db.connect(reuse_if_open=True)


def _hung_up():
    """Whether the hook's client closed its connection: once a request's body is read, its socket has
    nothing more to read until the peer closes it (end of file) or resets it. Checked by a peek that
    never blocks (select() cannot take the descriptors past 1024 that a thousand waiting hooks use)."""
    sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    if sock is None:  # an in-process test client: there is no connection to lose
        return False
    timeout = sock.gettimeout()
    sock.settimeout(0)  # gevent's socket would otherwise wait for data instead of answering at once
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # nothing to read: still connected
    except OSError:
        return True  # reset
    finally:
        sock.settimeout(timeout)


_HANDLERS = {
    "UserPromptSubmit": _prompt,
    "SessionStart": _session_start,
    "PreToolUse": _pre_tool,
    "PermissionRequest": _permission,
    "PostToolUse": _post_tool,
    "PostToolUseFailure": _post_tool,
    "Notification": _notification,
    "Stop": _stop,
    "SubagentStop": _subagent_stop,
    "SessionEnd": _session_end,
}
