"""The management contract: the browser's session routes (snake_case JSON, ISO 8601 UTC timestamps).

Views look up the caller's session, call one domain operation and dump, as the agent contract's do.
A session's messages and its export are streamed a page at a time, so no response holds them all.
"""
from flask import Blueprint, Response, g

import domain
import models
import schemas
from models import Session, db, message_pages, now_ms, pause
from routes import ApiError, authenticate, endpoint, session_not_found

bp = Blueprint("api_sessions", __name__)
bp.before_request(authenticate)
bp.register_error_handler(domain.SessionNotFound, session_not_found)

LIST_PAGE_ROWS = 250  # sessions read and dumped between two pauses of a listing: ~10 ms


@bp.get("/api/sessions")
@endpoint(query=schemas.session_list_query, responses={200: schemas.SessionListPage})
def index(args):
    """The caller's sessions, most recently updated first: all (streamed), or a page with limit/cursor."""
    if args:
        rows, cursor = models.session_page(g.account_id, args.pop("limit", 100), args.pop("cursor", None), **args)
        return schemas.session_list_page.dump({"items": rows, "next_cursor": cursor})
    # The order is read at once (ids only: 100,000 take a few MB and one short query); the sessions
    # are then read and dumped a page at a time, each page on a connection held only while reading it,
    # yielding between pages. Dumping 100,000 in one go held the worker for 3.6 s. Each session that
    # exists throughout is listed once, as it is when its page is read; one deleted meanwhile is left out.
    query = models.sessions_by_update(g.account_id, columns=(Session.id,))
    ids = [sid for (sid,) in db.execute(query).fetchall()]  # without Peewee's per-row wrapper

    def chunks():
        yield '{"items":['
        separator = ""
        for start in range(0, len(ids), LIST_PAGE_ROWS):
            page = ids[start:start + LIST_PAGE_ROWS]
            with db.connection_context():
                found = {s.id: s for s in Session.select().where(Session.id.in_(page))}
            rows = [found[sid] for sid in page if sid in found]
            if rows:
                yield separator + schemas.to_json(schemas.session_schema.dump(rows, many=True))[1:-1]
                separator = ","
            pause()
        yield "]}"
    return Response(chunks(), mimetype="application/json")


@bp.get("/api/projects")
@endpoint(responses={200: schemas.Projects})
def projects():
    """The working directories the caller's sessions name (their metadata's `cwd`), for filtering the list."""
    return schemas.projects.dump({"items": models.projects(g.account_id)})


@bp.post("/api/sessions")
@endpoint(body=schemas.managed_session_create_schema, responses={201: schemas.SessionSchema})
def create(body):
    """Create a session, with a title or without."""
    session, _ = domain.create_session(g.account_id, title=body["title"], active=False)
    return schemas.session_schema.dump(session), 201


@bp.get("/api/sessions/<session_id>")
@endpoint(query=schemas.session_show_query, responses={200: schemas.SessionDetail}, errors=(401, 404))
def show(session_id, args):
    """The session and all its messages in seq order (streamed); with messages=false, the session alone."""
    session = domain.find_session(g.account_id, session_id)
    if not args["messages"]:
        return schemas.session_schema.dump(session)
    return _streamed(schemas.session_schema.dump(session), session, schemas.messages_schema)


@bp.get("/api/sessions/<session_id>/messages")
@endpoint(query=schemas.messages_range_query, responses={200: schemas.ManagedMessagePage}, errors=(401, 404))
def messages(session_id, args):
    """A page of the session's messages: after a seq (ascending, from the start by default) or before one (descending)."""
    session = domain.find_session(g.account_id, session_id)
    rows = list(models.message_range(session.id, args["limit"] + 1, args.get("after_seq"), args.get("before_seq")))
    return schemas.managed_message_page.dump({"messages": rows[:args["limit"]], "has_more": len(rows) > args["limit"]})


@bp.patch("/api/sessions/<session_id>")
@endpoint(body=schemas.session_rename_schema, responses={200: schemas.SessionSchema}, errors=(401, 404))
def update(session_id, body):
    """Rename the session."""
    session = domain.update_session(domain.find_session(g.account_id, session_id), title=body["title"])
    return schemas.session_schema.dump(session)


@bp.patch("/api/sessions/<session_id>/system-prompt")
@endpoint(body=schemas.system_prompt_update_schema, responses={200: schemas.SessionSchema}, errors=(401, 404))
def update_system_prompt(session_id, body):
    """Set the session's system prompt; a blank one clears it, null leaves it as it is."""
    session = domain.find_session(g.account_id, session_id)
    if body:
        session = domain.update_session(session, **body)
    return schemas.session_schema.dump(session)


@bp.post("/api/sessions/<session_id>/messages")
@endpoint(body=schemas.chat_message_schema, responses={201: schemas.MessageSchema}, errors=(401, 404))
def append(session_id, body):
    """Add a message to the session (how a person in the browser talks to the agent)."""
    [message] = domain.append_messages(g.account_id, session_id, [body])
    return schemas.message_schema.dump(message), 201


@bp.delete("/api/sessions/<session_id>")
@endpoint(responses={204: None}, errors=(401, 404))
def delete(session_id):
    """Delete the session and everything in it."""
    domain.delete_session(domain.find_session(g.account_id, session_id))
    return "", 204


@bp.delete("/api/sessions")
@endpoint(responses={200: schemas.Deleted})
def delete_all():
    """Delete every session of the caller, in one transaction."""
    return schemas.deleted.dump({"deleted": domain.delete_all_sessions(g.account_id)})


@bp.get("/api/sessions/<session_id>/export")
@endpoint(responses={200: schemas.ExportDocumentSchema}, errors=(401, 404))
def export(session_id):
    """The session as an export document (version 1), streamed as a download."""
    session = domain.find_session(g.account_id, session_id)
    response = Response(schemas.export_document(session, now_ms(), message_pages(session.id, session.seq)),
                        mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="session-{session.id}.json"'
    return response


@bp.post("/api/sessions/import")
@endpoint(body=schemas.import_document_schema, responses={201: schemas.ImportResult})
def import_document(body):
    """Create a new session from an export document, all its messages in one transaction."""
    session = domain.import_session(g.account_id, body)
    return schemas.import_result.dump({"session": session, "imported_messages": len(body["messages"])}), 201


def _streamed(head, session, messages_schema):
    """The JSON object `head` with a "messages" array of the session's messages, written page by page."""
    return Response(schemas.with_messages(head, message_pages(session.id, session.seq), messages_schema),
                    mimetype="application/json")


@bp.get("/api/search")
@endpoint(query=schemas.search_query, responses={200: schemas.SearchResults})
def search(args):
    """Find session titles, then messages, that match a query; newest first, with snippets."""
    try:
        hits, cursor = models.search(g.account_id, args["q"], args["session_id"], args["limit"], args["cursor"])
    except models.BadQuery as e:
        raise ApiError(400, "invalid_request", f"q: {e}", {"q": [str(e)]}) from None
    return schemas.search_results.dump({"items": hits, "next_cursor": cursor and f"{cursor[0]}.{cursor[1]}"})
