"""The agent contract: happy-server's session routes (camelCase JSON, epoch milliseconds).

Views look up the caller's session, call one domain operation and dump; error bodies are the happy-server contract's.
"""
import time

from flask import Blueprint, g

import domain
import models
import schemas
from events import hub
from models import db, now_ms
from routes import ApiError, authenticate, endpoint

bp = Blueprint("agent_sessions", __name__)
bp.before_request(authenticate)

ACTIVE_WINDOW_MS = 15 * 60 * 1000
V1_PAGE = 150


@bp.errorhandler(domain.SessionNotFound)
def session_not_found(e):
    return ApiError(404, "Session not found").response()


@bp.get("/v1/sessions")
@endpoint(responses={200: schemas.SessionListV1})
def index():
    """The 150 most recently updated sessions."""
    rows = models.sessions_by_update(g.account_id, V1_PAGE)
    return schemas.session_list_v1.dump({"sessions": rows})


@bp.get("/v2/sessions/active")
@endpoint(query=schemas.active_sessions_query, responses={200: schemas.SessionList})
def active(args):
    """Active sessions alive within 15 minutes, newest activity first."""
    rows = models.active_sessions(g.account_id, now_ms() - ACTIVE_WINDOW_MS, args["limit"])
    return schemas.session_list.dump({"sessions": rows})


@bp.get("/v2/sessions")
@endpoint(query=schemas.sessions_page_query, responses={200: schemas.SessionPage})
def page(args):
    """Sessions by id descending (newest first), a page at a time."""
    before = None
    if "cursor" in args:
        cursor = args["cursor"]
        if not cursor.startswith(schemas.CURSOR_PREFIX) or len(cursor) == len(schemas.CURSOR_PREFIX):
            raise ApiError(400, "Invalid cursor format", "cursor must be 'cursor_v1_<session id>'.")
        before = cursor[len(schemas.CURSOR_PREFIX):]
    rows = list(models.sessions_by_id(g.account_id, args["limit"] + 1, before, args.get("changed_since")))
    has_next = len(rows) > args["limit"]
    rows = rows[:args["limit"]]
    return schemas.session_page.dump({
        "sessions": rows,
        "nextCursor": schemas.CURSOR_PREFIX + rows[-1].id if has_next else None,
        "hasNext": has_next,
    })


@bp.post("/v1/sessions")
@endpoint(body=schemas.session_create_schema, responses={200: schemas.SessionEnvelope})
def create(body):
    """Create a session, or load the one with this tag."""
    session, _ = domain.create_session(g.account_id, **body)
    return schemas.session_envelope.dump({"session": session})


@bp.get("/v1/sessions/<session_id>/messages")
@endpoint(responses={200: schemas.MessageList}, errors=(401, 404))
def messages(session_id):
    """The 150 newest messages, newest first."""
    session = domain.find_session(g.account_id, session_id)
    rows = models.newest_messages(session.id, V1_PAGE)
    return schemas.message_list.dump({"messages": rows})


@bp.delete("/v1/sessions/<session_id>")
@endpoint(responses={200: schemas.Success}, errors=(401, 404))
def delete(session_id):
    """Delete a session and everything in it."""
    try:
        domain.delete_session(domain.find_session(g.account_id, session_id))
    except domain.SessionNotFound:
        raise ApiError(404, "Session not found or not owned by user") from None
    return schemas.success.dump({"success": True})


@bp.get("/v3/sessions/<session_id>/messages")
@endpoint(query=schemas.messages_page_query, responses={200: schemas.MessagePage}, errors=(401, 404))
def messages_page(session_id, args):
    """Messages after a seq (ascending, the default from 0) or before one (descending); with `wait`,
    an empty answer after a seq waits up to that many seconds for a message (long-poll)."""
    session = domain.find_session(g.account_id, session_id)

    def page():
        return list(models.message_range(session.id, args["limit"] + 1, args.get("after_seq"), args.get("before_seq")))

    if not args["wait"]:
        rows = page()
    else:
        # Watching starts before the read, so a message committed after it always wakes the wait.
        # Every publication for the session wakes it (heartbeats too): it then reads again. A stopping
        # server wakes it too and it answers what there is, so no poll holds up the shutdown.
        deadline = time.monotonic() + args["wait"]
        with hub.watch(g.account_id, session.id) as watcher:
            rows = page()
            while not rows and not hub.stopping and time.monotonic() < deadline:
                # A waiting poll holds no pooled connection: thousands may wait, and the pool is small.
                db.close()
                woken = watcher.wait(deadline - time.monotonic())
                db.connect()
                if not woken:
                    break
                session = domain.find_session(g.account_id, session_id)  # deleted meanwhile: 404
                rows = page()
    return schemas.message_page.dump({"messages": rows[:args["limit"]], "hasMore": len(rows) > args["limit"]})


@bp.post("/v3/sessions/<session_id>/messages")
@endpoint(body=schemas.messages_append_schema, responses={200: schemas.AppendedList}, errors=(401, 404))
def append(session_id, body):
    """Append messages; a localId already stored returns the stored message instead."""
    rows = domain.append_messages(g.account_id, session_id, body["messages"], agent=True)
    return schemas.appended_list.dump({"messages": rows})


def _compare_and_set(session_id, field, body, result_schema):
    session = domain.find_session(g.account_id, session_id)
    ok, version, value = domain.compare_and_set(session, field, body[field], body["expected_version"])
    answer = result_schema.dump({"result": "success" if ok else "version-mismatch", "version": version, field: value})
    return (answer, 200) if ok else (answer, 409)


@bp.post("/v1/sessions/<session_id>/metadata")
@endpoint(body=schemas.metadata_update_schema,
          responses={200: schemas.MetadataResult, 409: schemas.MetadataResult}, errors=(401, 404))
def update_metadata(session_id, body):
    """Replace metadata if its version is still expectedVersion."""
    return _compare_and_set(session_id, "metadata", body, schemas.metadata_result)


@bp.post("/v1/sessions/<session_id>/agent-state")
@endpoint(body=schemas.agent_state_update_schema,
          responses={200: schemas.AgentStateResult, 409: schemas.AgentStateResult}, errors=(401, 404))
def update_agent_state(session_id, body):
    """Replace agentState if its version is still expectedVersion."""
    return _compare_and_set(session_id, "agent_state", body, schemas.agent_state_result)


@bp.post("/v1/sessions/<session_id>/alive")
@endpoint(body=schemas.alive_schema, responses={200: schemas.Success}, errors=(401, 404))
def alive(session_id, body):
    """Presence heartbeat: the session is active (and maybe thinking)."""
    domain.presence.alive(domain.find_session(g.account_id, session_id), body["time"], body["thinking"])
    return schemas.success.dump({"success": True})


@bp.post("/v1/sessions/<session_id>/end")
@endpoint(body=schemas.end_schema, responses={200: schemas.Success}, errors=(401, 404))
def end(session_id, body):
    """The agent is done: mark the session inactive now."""
    domain.presence.end(domain.find_session(g.account_id, session_id), body["time"])
    return schemas.success.dump({"success": True})
