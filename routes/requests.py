"""The management contract's routes for what agents wait on a person for: requests (Claude Code's
permission requests) and their decisions, and a session's hold switch.

Views look up the caller's session, call one domain operation and dump, like routes/api_sessions.py.
"""
from flask import Blueprint, g, jsonify

import domain
import schemas
from routes import ApiError, authenticate, endpoint, session_not_found

bp = Blueprint("requests", __name__)
bp.before_request(authenticate)
bp.register_error_handler(domain.SessionNotFound, session_not_found)


@bp.errorhandler(domain.RequestNotFound)
def request_not_found(e):
    return ApiError(404, "request_not_found", "No request with this id in this session.").response()


@bp.errorhandler(domain.RequestNotPending)
def request_not_pending(e):
    return jsonify(schemas.not_pending.dump({
        "error": "request_not_pending", "message": f"The request is already {e.status}.", "status": e.status})), 409


@bp.get("/api/requests")
@endpoint(query=schemas.requests_query, responses={200: schemas.RequestItems})
def index(args):
    """Every request of the caller's sessions, newest first (`?status=pending`: what waits for you)."""
    return schemas.request_items.dump({"items": domain.list_requests(g.account_id, status=args.get("status"))})


@bp.get("/api/sessions/<session_id>/requests")
@endpoint(query=schemas.requests_query, responses={200: schemas.RequestItems}, errors=(401, 404))
def session_index(session_id, args):
    """The session's requests, newest first, optionally of one status."""
    session = domain.find_session(g.account_id, session_id)
    return schemas.request_items.dump({"items": domain.list_requests(g.account_id, session.id, args.get("status"))})


@bp.post("/api/sessions/<session_id>/requests/<request_id>/decision")
@endpoint(body=schemas.decision_schema, responses={200: schemas.RequestSchema, 409: schemas.NotPending},
          errors=(401, 404))
def decide(session_id, request_id, body):
    """Allow or deny a pending request; the first decision wins (409 for any later one)."""
    session = domain.find_session(g.account_id, session_id)
    status = "allowed" if body["decision"] == "allow" else "denied"
    row = domain.settle_request(g.account_id, request_id, status, body["reason"], session.id)
    return schemas.request_schema.dump(row)


@bp.put("/api/sessions/<session_id>/hold")
@endpoint(body=schemas.hold_schema, responses={200: schemas.SessionSchema}, errors=(401, 404))
def hold(session_id, body):
    """Switch hold: a held Claude session waits at its Stop for the person's next message."""
    session = domain.set_hold(domain.find_session(g.account_id, session_id), body["hold"])
    return schemas.session_schema.dump(session)
