"""Every error the server answers with, in one table, and the handlers that give every failure the
one JSON error shape `{error, message, errors?}`.

The codes are written here and nowhere else: an ApiError with a code missing from the table is a bug
caught at once, and the README's Errors section is checked against the table (tests/test_errors.py).
No code is derived from a library's display name.
"""
import logging
import sqlite3

import peewee
from flask import current_app, jsonify
from marshmallow import ValidationError
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException

import models
from events import Busy, QuotaExceeded

log = logging.getLogger("switchboard")

# code: (the HTTP statuses it comes with, what it means). Websocket error frames use the same codes.
ERRORS = {
    "invalid_request": ((400,), "the body, query string or frame failed validation; `errors` maps each field to its messages"),
    "invalid_json": ((400,), "the body or frame is not JSON (or not UTF-8, or nested too deeply)"),
    "bad_request": ((400,), "the HTTP request itself is malformed (a broken chunked body)"),
    "unauthorized": ((401,), "the token is missing, unknown or revoked"),
    "not_found": ((404,), "no such route"),
    "session_not_found": ((404,), "no such session among yours (another account's is answered the same)"),
    "request_not_found": ((404,), "no such approval request in this session"),
    "webhook_not_found": ((404,), "no such webhook among yours"),
    "subscription_not_found": ((404,), "no such push subscription for this token"),
    "method_not_allowed": ((405,), "the route does not take this method (`Allow` lists those it does)"),
    "request_timeout": ((408,), "the body did not arrive within `SWITCHBOARD_BODY_TIMEOUT_SECONDS`"),
    "request_not_pending": ((409,), "the approval request was already decided, expired or cancelled (`status` says which)"),
    "payload_too_large": ((413,), "the body is larger than `SWITCHBOARD_MAX_BODY_BYTES` (the message names the limit)"),
    "unsupported_media_type": ((415,), "the body is not sent as `application/json`"),
    "quota_exceeded": ((429,), "the account is at one of its quotas (the message names it)"),
    "internal_error": ((500,), "a bug: logged on the server, nothing of it in the answer"),
    "database_busy": ((503,), "another process held the database's write lock past `SWITCHBOARD_BUSY_WAIT_SECONDS`"),
    "server_busy": ((503,), "too many request bodies in flight (`SWITCHBOARD_MAX_INFLIGHT_BODY_BYTES`)"),
    "storage_unavailable": ((503, 507), "the database cannot take writes: 507 the disk is full; 503 read-only, "
                                        "an I/O error, or the file deleted or replaced under the server"),
    # websocket error frames only
    "invalid_frame": ((), "a binary frame (frames are JSON text)"),
    "unknown_event": ((), "an event name the server does not handle"),
}

# Codes the happy-server contract fixes for the agent routes: kept verbatim, as its clients match them.
CONTRACT_ERRORS = {
    "Session not found": (404,),
    "Session not found or not owned by user": (404,),
    "Invalid cursor format": (400,),
}

# Websocket close codes the server sends, and why.
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_QUOTA_EXCEEDED = 4429
CLOSE_CODES = {
    CLOSE_GOING_AWAY: "the server is shutting down: reconnect with backoff",
    CLOSE_POLICY_VIOLATION: "the client sent frames faster than it read the answers, past `SWITCHBOARD_WS_INCOMING_BYTES`",
    CLOSE_MESSAGE_TOO_BIG: "a frame over `SWITCHBOARD_MAX_FRAME_BYTES`",
    CLOSE_INTERNAL_ERROR: "an unexpected server error",
    CLOSE_TRY_AGAIN_LATER: "the client fell behind the live updates or its replay ran past "
                           "`SWITCHBOARD_WS_REPLAY_SECONDS`: reconnect with `since`; or it had not sent its auth "
                           "frame when `SWITCHBOARD_WS_MAX_UNAUTHENTICATED` newer sockets were waiting for theirs",
    CLOSE_UNAUTHORIZED: "bad auth frame, bad or revoked token",
    CLOSE_QUOTA_EXCEEDED: "the token has `SWITCHBOARD_QUOTA_WEBSOCKETS_PER_TOKEN` websockets open already",
}

# werkzeug's exceptions by status: their names ("Request Entity Too Large") are not our codes.
_HTTP_EXCEPTIONS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
                    413: "payload_too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    """An answer with a status and the JSON error shape: {error, message, errors?}."""

    def __init__(self, status, error, message=None, errors=None, headers=None):
        statuses = ERRORS[error][0] if error in ERRORS else CONTRACT_ERRORS[error]  # KeyError: not in the table
        assert status in statuses, f"{error} is never sent with {status}"
        super().__init__(message or error)
        self.status = status
        self.error = error
        self.message = message or error
        self.errors = errors
        self.headers = headers or {}

    def response(self):
        body = {"error": self.error, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return jsonify(body), self.status, self.headers


def storage_error(failure):
    """The answer to a write the storage could not take: 507 when the disk is full, else 503."""
    return ApiError(507 if failure.full else 503, "storage_unavailable", failure.reason,
                    headers={"Retry-After": "30"})


def validation_message(messages):
    """The message of a validation error: the first bad field, by its path (and in a list of
    messages, which one, counted from 1 as a person counts; `errors` keeps the list's index)."""
    errors = messages if isinstance(messages, dict) else {"_schema": messages}
    path, first = [], errors
    while isinstance(first, dict):
        key, first = next(iter(first.items()))
        path.append(str(key))
    if path[0] == "messages" and len(path) > 2 and path[1].isdigit():
        return errors, f"message {int(path[1]) + 1}: {'.'.join(path[2:])}: {first[0]}"
    return errors, f"{'.'.join(path)}: {first[0]}"


def init_app(app):
    """Every failure a request can meet, answered in the JSON error shape."""

    @app.errorhandler(ApiError)
    def api_error(e):
        return e.response()

    @app.errorhandler(ValidationError)
    def invalid(e):
        errors, message = validation_message(e.messages)
        return ApiError(400, "invalid_request", message, errors).response()

    @app.errorhandler(Busy)
    @app.errorhandler(MaxConnectionsExceeded)
    def busy(e):
        return ApiError(503, "database_busy", "The database is locked by another process; retry shortly.",
                        headers={"Retry-After": "1"}).response()

    @app.errorhandler(QuotaExceeded)
    def quota_exceeded(e):
        return ApiError(429, "quota_exceeded", str(e)).response()

    @app.errorhandler(models.StorageUnavailable)
    def storage_unavailable(e):
        return storage_error(e).response()

    @app.errorhandler(peewee.DataError)
    def unstorable(e):
        # PostgreSQL's text holds no U+0000 (SQLite's does): a value it cannot store is a bad value
        if "NUL" in str(e):
            return ApiError(400, "invalid_request", "Text containing U+0000 (NUL) cannot be stored on PostgreSQL.").response()
        return database_error(e)

    @app.errorhandler(sqlite3.Error)
    @app.errorhandler(peewee.DatabaseError)
    def database_error(e):
        failure = models.storage_failure(e)
        if failure is None:
            return internal(e)
        return storage_error(failure).response()

    @app.errorhandler(HTTPException)
    def http_error(e):
        response = e.get_response()
        code = _HTTP_EXCEPTIONS.get(e.code)
        if code is None:
            log.error("HTTP %s has no error code in errors.ERRORS", e.code)
            return internal(e)
        message = e.description
        if code == "payload_too_large":
            limit = current_app.config["MAX_BODY_BYTES"]
            message = f"The body is larger than the limit of {limit:,} bytes (SWITCHBOARD_MAX_BODY_BYTES)."
        response.data = jsonify({"error": code, "message": message}).data
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def internal(e):
        log.exception("unhandled error")
        return ApiError(500, "internal_error", "Something went wrong on the server.").response()
