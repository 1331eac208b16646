"""What every blueprint shares: bearer-token auth, loading bodies and query strings through schemas,
the API error, and the `endpoint` decorator whose declarations also become the OpenAPI document.

Views stay thin: `endpoint` loads and validates input before the view runs, so a view only looks up,
calls one domain operation and dumps.
"""
import functools
import hmac
import socket
import threading
from collections import namedtuple
from functools import wraps

import gevent
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, g, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema, fields
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

import models
from errors import ApiError, storage_error  # noqa: F401 (re-exported for the blueprints)
from events import Busy, writer
from models import Token, db, hash_secret, now_ms, pause
from schemas import MAX_TEXT_CHARS, Base64Bytes, Iso, JsonObject, JsonText, MessageContent, Millis, parse_json, to_json


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON answers (views' dicts, jsonify) encoded by to_json, like every frame and log body:
    a dump carries stored JSON text as fragments that only to_json splices in. Parsing is Flask's own."""

    def dumps(self, obj, **kwargs):
        return to_json(obj)


def session_not_found(e):
    """The management contract's answer for a session that is missing or another account's; its
    blueprints register it for domain.SessionNotFound."""
    return ApiError(404, "session_not_found", "No session with this id.").response()


# --- authentication -----------------------------------------------------------------------------

_last_used = {}  # token id -> ms of the last last_used_at write
_last_used_lock = threading.Lock()
LAST_USED_INTERVAL_MS = 60_000


Credential = namedtuple("Credential", "token_id account_id")


def token_for_secret(secret):
    """The Credential (token_id, account_id) a secret belongs to, or None."""
    if not secret:
        return None
    digest = hash_secret(secret)
    row = db.execute_sql(*models.FIND_TOKEN(digest)).fetchone()  # every request runs it
    if row is None or not hmac.compare_digest(row[1], digest):
        return None
    token_id, _, account_id = row
    now = now_ms()
    with _last_used_lock:
        due = now - _last_used.get(token_id, 0) >= LAST_USED_INTERVAL_MS
        if due:
            _last_used[token_id] = now
    if due:
        # Bookkeeping must never fail or hold up the request (a read, a websocket's auth) it rides
        # on: while the write lock is taken, this use goes unrecorded and a later one records it.
        try:
            writer.run(None, lambda changes: Token.update(last_used_at=now).where(Token.id == token_id).execute(),
                       busy_wait=0)
        except Busy:
            pass
    return Credential(token_id, account_id)


def authenticate():
    """before_request hook for every authenticated blueprint: sets g.account_id and g.token_id."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    # From the headers alone, before any body byte is read: a request that fails here never has its
    # body read. The connection goes back to the pool while the body is read (read_body).
    opened = db.is_closed()
    try:
        token = token_for_secret(secret.strip()) if scheme.lower() == "bearer" else None
    finally:
        if opened:
            db.close()
    if token is None:
        raise ApiError(401, "unauthorized", "A valid 'Authorization: Bearer <token>' header is required.",
                       headers={"WWW-Authenticate": "Bearer"})
    g.account_id = token.account_id
    g.token_id = token.token_id


# --- input --------------------------------------------------------------------------------------

def load_body(schema):
    # A request with no body at all is an empty object: every field is then judged by the schema.
    if not request.content_length and not request.mimetype and "chunked" not in request.headers.get("Transfer-Encoding", ""):
        data = {}
    else:
        if not request.is_json:
            raise ApiError(415, "unsupported_media_type", "Send the body as JSON with 'Content-Type: application/json'.")
        try:
            # A schema for long documents parses its body in steps (schemas.parse_json_in_steps).
            data = getattr(schema, "parse", parse_json)(read_body())
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than the parser's stack
            data = None
        if data is None:
            raise ApiError(400, "invalid_json", "The body is not valid JSON.")
    return schema.load(data)


class RequestTimeout(ApiError):
    def __init__(self):
        super().__init__(408, "request_timeout", "The request body did not arrive in time.")


class _InFlight:
    """Body bytes being read or held by requests, bounded in total: past the budget a request is
    answered 503 before its body is read. Each body counts as at least MIN_CHARGE, as it also holds one
    of the worker's connections: that caps slow uploads at budget / MIN_CHARGE, far below the pool."""
    MIN_CHARGE = 64 << 10

    def __init__(self):
        self._lock = threading.Lock()
        self.used = 0

    def reserve(self, size, budget):
        charge = max(size, self.MIN_CHARGE)
        with self._lock:
            if self.used + charge > budget:
                return 0
            self.used += charge
        return charge

    def release(self, charge):
        with self._lock:
            self.used -= charge


in_flight = _InFlight()


def read_body():
    """The body's bytes, read once per request, after authentication (the caller's job: a request that
    fails it never has its body read). 413 past MAX_CONTENT_LENGTH without reading further; 503 when the
    in-flight budget is spent; 408 when the whole body takes longer than BODY_TIMEOUT_SECONDS.

    werkzeug refuses a Content-Length over the limit before reading a byte, but cuts a chunked body
    at the limit without a word, leaving invalid JSON or, worse, a valid prefix that would be stored.
    """
    if "body" not in g:
        limit = request.max_content_length
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if not chunked and (request.content_length or 0) > limit:
            raise RequestEntityTooLarge()
        config = current_app.config
        charge = in_flight.reserve(limit if chunked else request.content_length or 0, config["MAX_INFLIGHT_BODY_BYTES"])
        if not charge:
            raise ApiError(503, "server_busy", "Too many uploads in progress; retry shortly.",
                           headers={"Retry-After": "1"})
        g.body_charge = charge  # released when the request ends (release_body)
        # The whole body has one deadline: a client trickling a byte at a time must not hold a
        # connection (and its share of the budget) for as long as it likes.
        with gevent.Timeout(config["BODY_TIMEOUT_SECONDS"], RequestTimeout):
            if not chunked:
                g.body = _read_in_steps(request.stream, request.content_length or 0)
            else:
                try:
                    g.body = request.environ["wsgi.input"].read(limit + 1)
                except Exception:  # the server's own parser refused the chunk framing (gunicorn's ParseException)
                    raise BadRequest("The chunked body is malformed.") from None
                if len(g.body) > limit:
                    raise RequestEntityTooLarge()
    return g.body


def _read_in_steps(stream, size, step=1 << 20):
    """`size` bytes from the stream, pausing the worker after each MiB: copying 16 MiB that arrived
    at once took the worker for a tenth of a second."""
    chunks = []
    while size > 0:
        chunk = stream.read(min(step, size))
        if not chunk:
            break  # the client stopped short; the parser sees a truncated body
        chunks.append(chunk)
        size -= len(chunk)
        if size > 0:  # after the last one the request goes on at once: a pause there cost each append 1 ms
            pause()
    return b"".join(chunks)


def release_body(exc=None):
    """teardown_request: give back the request's share of the in-flight budget."""
    charge = g.pop("body_charge", 0)
    if charge:
        in_flight.release(charge)


def close_unread_body(response):
    """after_request: a body that was sent but not read whole is never drained. The connection ends
    with this answer (shut once the answer is out), so nobody can make the worker read a body it
    refused, or one no route wanted."""
    sock = request.environ.get("gunicorn.socket")
    if sock is not None and _body_left_unread():
        response.call_on_close(functools.partial(_shut_reading, sock))
    return response


def _body_left_unread():
    declared = request.content_length or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return bool(declared) and "body" not in g


def _shut_reading(sock):
    # Both ways: Linux still hands a socket shut for reading the bytes that arrive afterwards, so a body
    # that came late was parsed as the next request and its error page answered the client's next one.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def load_query(schema):
    return schema.load(request.args.to_dict())


# --- declaration and OpenAPI --------------------------------------------------------------------

_ERROR_STATUSES = {400: "Invalid input", 401: "Missing or invalid token", 404: "Not found",
                   408: "The body did not arrive in time", 409: "Conflict", 413: "Body too large",
                   415: "Not JSON", 429: "A quota of the account is reached",
                   503: "Database busy, too many uploads, or storage unavailable", 507: "Disk full"}


def endpoint(*, body=None, query=None, responses, errors=(401,)):
    """Declare a view's input and output schemas. Loaded input is passed as `body=` / `args=`.

    `responses` maps a status to a schema (or None for no body); it documents, the view dumps.
    """
    def decorate(view):
        @wraps(view)
        def wrapper(**kwargs):
            if query is not None:
                kwargs["args"] = load_query(query)
            if body is not None:
                kwargs["body"] = load_body(body)
            return view(**kwargs)

        statuses = set(errors) | ({400} if body is not None or query is not None else set())
        if body is not None:
            statuses |= {408, 413, 415}
        wrapper.openapi = {"body": body, "query": query, "responses": responses, "errors": sorted(statuses)}
        return wrapper
    return decorate


class ErrorSchema(Schema):
    error = fields.String(required=True)
    message = fields.String()
    errors = fields.Dict()


_JSON_TYPES = ("object", "array", "string", "number", "boolean")


def _json_value(converter, field, ret, **kwargs):
    """A JsonText field that may not be null lists the other JSON types (OpenAPI 3.0 has no null type
    to leave out). Message content as text has bounds when the message has a role: always in a chat
    message; in an imported one, which may have none, the bounds are said in words."""
    if not isinstance(field, JsonText) or "type" in ret or field.allow_none:
        return {}
    types = [{"type": name} for name in _JSON_TYPES]
    if isinstance(field, MessageContent):
        if not field.parent.fields["role"].allow_none:
            types[_JSON_TYPES.index("string")].update(minLength=1, maxLength=MAX_TEXT_CHARS)
        else:
            return {"anyOf": types, "description": f"Text of 1 to {MAX_TEXT_CHARS} characters if the message "
                                                   "has a role, else any JSON value."}
    return {"anyOf": types}


def _input_instant(converter, field, ret, **kwargs):
    if isinstance(field, Iso) and not field.dump_only:
        return {"description": "An instant of the years 1 to 9999 UTC; without an offset, UTC."}
    return {}


def _any_request():
    """What a request to any operation may meet: the database locked by another process, every pooled
    connection in use, too many uploads in flight or the storage failing (503, 507 for a full disk), a
    quota (429); and, refused by gunicorn in HTML before the app sees it, a request line (method, path
    and query string) over gunicorn's limit of 4094 bytes (414)."""
    retry = {"Retry-After": {"schema": {"type": "integer"}}}
    error = {"application/json": {"schema": "Error"}}
    return {"414": {"description": "Request line too long (answered by the HTTP server, in HTML)",
                    "content": {"text/html": {"schema": {"type": "string"}}}},
            "429": {"description": _ERROR_STATUSES[429], "content": error},
            "503": {"description": _ERROR_STATUSES[503], "headers": retry, "content": error},
            "507": {"description": _ERROR_STATUSES[507], "headers": retry, "content": error}}


def build_spec(app, title, version):
    plugin = MarshmallowPlugin()
    spec = APISpec(title=title, version=version, openapi_version="3.0.3", plugins=[plugin])
    plugin.map_to_openapi_type(JsonText, None, None)
    plugin.map_to_openapi_type(Iso, "string", "date-time")
    plugin.map_to_openapi_type(Base64Bytes, "string", "byte")
    plugin.map_to_openapi_type(Millis, "integer", "int64")
    plugin.map_to_openapi_type(JsonObject, "object", None)
    plugin.converter.add_attribute_function(_json_value)
    plugin.converter.add_attribute_function(_input_instant)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    paths = {}
    for rule in app.url_map.iter_rules():
        declared = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if declared is None:
            continue
        path = rule.rule
        parameters = []
        for arg in rule.arguments:
            path = path.replace(f"<{arg}>", f"{{{arg}}}")
            parameters.append({"in": "path", "name": arg, "required": True, "schema": {"type": "string"}})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = {"operationId": rule.endpoint, "parameters": list(parameters), "responses": {}}
            view = app.view_functions[rule.endpoint]
            if view.__doc__:
                operation["summary"] = view.__doc__.strip().splitlines()[0]
            if declared["query"] is not None:
                operation["parameters"].append({"in": "query", "schema": declared["query"]})
            if declared["body"] is not None:
                # No body at all loads as {} (load_body): it is only refused when a field is required.
                required = any(f.required for f in declared["body"].load_fields.values())
                operation["requestBody"] = {"required": required,
                                            "content": {"application/json": {"schema": declared["body"]}}}
            for status, schema in declared["responses"].items():
                response = {"description": "OK"}
                if schema is not None:
                    response["content"] = {"application/json": {"schema": schema}}
                operation["responses"][str(status)] = response
            for status in declared["errors"]:
                operation["responses"].setdefault(str(status), {
                    "description": _ERROR_STATUSES[status],
                    "content": {"application/json": {"schema": "Error"}}})
            operation["responses"].update(_any_request())
            if declared["errors"] and 401 in declared["errors"]:
                operation["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
