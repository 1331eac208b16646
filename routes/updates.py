"""The real-time endpoint `GET /v1/updates`: auth frame, replay since a seq, `ready`, then live updates,
ephemerals and client events (README, "Real time").

Only a connection's own handler sends on its socket. A reader thread turns incoming frames into
items on the queue the hub fills (bounded separately), so one loop serialises updates and acks in order.
No database connection is held while the socket is idle: each step takes one from the pool.
"""
import contextlib
import functools
import logging
import socket
import threading
import time
from collections import OrderedDict

from flask import Blueprint, current_app, request
from flask_sock import Sock
from marshmallow import ValidationError
from simple_websocket import ConnectionClosed

import domain
import schemas
from errors import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    CLOSE_QUOTA_EXCEEDED,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORIZED,
    ERRORS,
)
from events import Busy, QuotaExceeded, frame, hub, update_log
from models import Account, Token, db, pause, storage_failure
from routes import token_for_secret

bp = Blueprint("updates", __name__)
log = logging.getLogger("switchboard")
sock = Sock()

# Items the reader thread and the hub put on a connection's queue besides (seq or None, frame).
INCOMING = "incoming"
CLOSED = "closed"

# How long a closing websocket keeps reading what its peer still sends (linger).
CLOSE_LINGER_SECONDS = 2.0


class SafeSocket:
    """The accepted socket, with `send` made whole and exclusive.

    simple-websocket 1.1.0 writes frames with `socket.send`, which may write only part of a large
    frame, and its reader thread (pongs, pings) sends concurrently with the handler; both corrupt
    the stream (miguelgrinberg/simple-websocket#45). The timeout bounds how long a peer that stops
    reading can hold its handler.
    """

    def __init__(self, raw, send_timeout):
        self._raw = raw
        self._lock = threading.Lock()
        raw.settimeout(send_timeout)

    def send(self, data):
        with self._lock:
            # One plain send writes a whole frame in the common case; sendall only for a remainder
            # (gevent's sendall costs a getsockopt and a loop on every call).
            sent = self._raw.send(data)
            if sent < len(data):
                self._raw.sendall(memoryview(data)[sent:])
        return len(data)

    def close(self):
        """simple-websocket's reader closes the socket when it stops reading; `linger` and then the
        server close it instead."""

    def __getattr__(self, name):
        return getattr(self._raw, name)


def frame_bytes(text):
    """A complete server text frame (unmasked, unfragmented), built without simple-websocket's
    wsproto round trip: a fan-out sends the same frame to every connection."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


# An update or ephemeral published to N connections is encoded once, not N times; the cache is
# small because a frame may be a megabyte.
shared_frame_bytes = functools.lru_cache(maxsize=16)(frame_bytes)


@bp.before_request
def prepare_socket():
    environ = request.environ
    # permessage-deflate costs about 6x the memory per socket and 3x the CPU per delivery here;
    # frames are small JSON on a local network, so the server never negotiates it.
    environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    for key in ("gunicorn.socket", "werkzeug.socket"):
        if key in environ:
            environ[key] = SafeSocket(environ[key], current_app.config["WS_SEND_TIMEOUT_SECONDS"])


def hang_up(ws):
    """End a connection whose peer cannot keep up: what was sent is delivered, then FIN, with no
    close handshake to wait for, so the socket and the reader thread selecting on it are freed now."""
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class ClientError(Exception):
    """An error frame's data: a code from errors.ERRORS, a message, maybe the fields' errors."""

    def __init__(self, error, message, errors=None):
        assert error in ERRORS, error
        super().__init__(message)
        self.data = {"error": error, "message": message}
        if errors:
            self.data["errors"] = errors


def _decode(raw, schema):
    if not isinstance(raw, str):
        raise ClientError("invalid_frame", "Frames must be JSON text, not binary.")
    try:
        parsed = schemas.parse_json(raw)
    except (ValueError, RecursionError):
        raise ClientError("invalid_json", "The frame is not valid JSON (or nested too deeply).") from None
    try:
        return schema.load(parsed)
    except ValidationError as e:
        errors = e.messages if isinstance(e.messages, dict) else {"_schema": e.messages}
        raise ClientError("invalid_request", "The frame did not validate.", errors) from None


class _Unauthenticated:
    """Upgraded sockets still waiting for their auth frame, oldest first, at most WS_MAX_UNAUTHENTICATED
    (0: no cap). One more closes the one that has waited longest with 1013: refusing the newest instead
    would let a client that keeps the cap full lock everyone else out, while a real client's auth frame
    follows its upgrade at once. Each also has WS_AUTH_TIMEOUT_SECONDS to send it (then 4401)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiting = OrderedDict()

    @contextlib.contextmanager
    def waiting(self, ws, cap):
        with self._lock:
            self._waiting[ws] = None
            oldest = self._waiting.popitem(last=False)[0] if cap and len(self._waiting) > cap else None
        if oldest is not None:
            try:
                oldest.close(CLOSE_TRY_AGAIN_LATER, "Too many connections waiting to authenticate: reconnect.")
            except (ConnectionClosed, OSError):
                pass
            oldest.event.set()  # its receive() wakes and ends that connection
        try:
            yield
        finally:
            with self._lock:
                self._waiting.pop(ws, None)


unauthenticated = _Unauthenticated()


class Connection:
    """One websocket: authenticate, subscribe, replay, then serve until either side leaves."""

    def __init__(self, ws, config):
        self.ws = ws
        self.config = config
        self.account_id = None
        self.last_seq = 0
        self.subscriber = None
        self.incoming_bytes = 0  # frames read and not yet answered (read)
        self._incoming_lock = threading.Lock()

    def send(self, text, encode=frame_bytes):
        if not self.ws.connected:
            raise ConnectionClosed(self.ws.close_reason, self.ws.close_message)
        self.ws.sock.send(encode(text))

    def refuse(self, message):
        self.send(frame("error", {"error": "unauthorized", "message": message}))
        self.ws.close(CLOSE_UNAUTHORIZED, message)

    def run(self):
        with unauthenticated.waiting(self.ws, self.config["WS_MAX_UNAUTHENTICATED"]):
            raw = self.ws.receive(timeout=self.config["WS_AUTH_TIMEOUT_SECONDS"])
        if raw is None:
            return self.refuse("No auth frame within the time limit.")
        if self.too_big(raw):
            return self.ws.close(CLOSE_MESSAGE_TOO_BIG, "Message is too big")
        try:
            envelope = _decode(raw, schemas.frame_schema)
            if envelope["event"] != "auth" or not isinstance(envelope["data"], dict):
                raise ClientError("unauthorized", "The first frame must be {event: 'auth', data: {...}}.")
            auth = schemas.auth_schema.load(envelope["data"])
        except (ClientError, ValidationError) as e:
            return self.refuse(e.data["message"] if isinstance(e, ClientError) else "Invalid auth frame.")
        with db.connection_context():
            token = token_for_secret(auth["token"])
            self.account_id = token and token.account_id
            if self.account_id is not None and auth["session_id"] is not None:
                try:
                    domain.find_session(self.account_id, auth["session_id"])
                except domain.SessionNotFound:
                    return self.refuse("Session not found.")
        if self.account_id is None:
            return self.refuse("Invalid token.")
        scope = auth["session_id"] if auth["client_type"] == "session-scoped" else None
        try:
            with hub.subscribe(self.account_id, scope, token.token_id) as self.subscriber:
                self.serve_subscribed(auth["since"], scope)
        except QuotaExceeded as e:  # only subscribing raises it: events answer it with an error frame
            self.send(frame("error", {"error": "quota_exceeded", "message": str(e)}))
            self.ws.close(CLOSE_QUOTA_EXCEEDED, str(e))

    def serve_subscribed(self, since, scope):
        try:
            if not self.catch_up(since, scope):
                return
            threading.Thread(target=self.read, daemon=True).start()
            self.serve()
        except (OSError, ConnectionClosed):
            raise
        except Exception:
            internal_error(self.ws)  # before release_reader's normal close
        finally:
            self.release_reader()

    def release_reader(self):
        """Let the reader thread finish: close the socket and wake its receive()."""
        if self.ws.connected:
            try:
                self.ws.close()
            except (ConnectionClosed, OSError):
                pass
        self.ws.connected = False
        self.ws.event.set()

    def catch_up(self, since, scope):
        """Replay what the client missed, a page at a time; live items already queued are
        deduplicated by seq. False when the replay outlasted WS_REPLAY_SECONDS: the connection is
        closed with 1013, and the client resumes from the last seq it got."""
        with db.connection_context():
            if since is None:
                pages, latest = [], Account.get_by_id(self.account_id).seq
            else:
                pages, latest = update_log.replay(self.account_id, since)
        if pages is None:
            self.send(frame("resync", {"seq": latest}))
        else:
            deadline = time.monotonic() + self.config["WS_REPLAY_SECONDS"]
            for page in pages:
                for _seq, session_id, text in page:
                    if scope is None or session_id in (None, scope):
                        self.send(text)
                if time.monotonic() > deadline:
                    self.ws.close(CLOSE_TRY_AGAIN_LATER, "Replay too slow: reconnect with since.")
                    return False
                pause()  # the worker serves everyone else between pages
        self.last_seq = latest
        self.send(frame("ready", {"seq": latest}))
        return True

    def read(self):
        """Hand incoming frames to the handler's loop, in order. They never count toward the 1013 bound
        (that is for events the client does not read), and none is dropped: past WS_INCOMING_BYTES
        waiting for an answer, the connection closes with 1008 after answering those already in."""
        try:
            while True:
                raw = self.ws.receive()
                if raw is None:
                    continue
                with self._incoming_lock:
                    self.incoming_bytes += len(raw)
                    over = self.incoming_bytes > self.config["WS_INCOMING_BYTES"]
                if over:
                    self.subscriber.put_own(hub.CLOSE, (CLOSE_POLICY_VIOLATION,
                                                        "Too many frames waiting for an answer: wait for acks."))
                    return
                self.subscriber.put_own(INCOMING, raw)
        except ConnectionClosed:
            pass
        self.subscriber.put_own(CLOSED, None)

    def serve(self):
        while True:
            kind, payload = self.subscriber.take()
            if self.subscriber.overflowed:
                self.ws.close(CLOSE_TRY_AGAIN_LATER, "Too slow: reconnect with since.")
                return hang_up(self.ws)
            if kind == CLOSED:
                return
            if kind == INCOMING:
                if self.too_big(payload):
                    self.ws.close(CLOSE_MESSAGE_TOO_BIG, "Message is too big")
                    return
                self.handle(payload)
                with self._incoming_lock:
                    self.incoming_bytes -= len(payload)
            elif kind is None:
                self.send(payload, shared_frame_bytes)
            elif kind == hub.CLOSE:
                code, reason = payload
                if code == CLOSE_UNAUTHORIZED:
                    return self.refuse(reason)
                self.ws.close(code, reason)
                return
            elif kind > self.last_seq:
                self.last_seq = kind
                self.send(payload, shared_frame_bytes)

    def too_big(self, raw):
        """simple-websocket limits text frames in characters; the limit is in bytes (UTF-8)."""
        limit = self.config["MAX_FRAME_BYTES"]
        return isinstance(raw, str) and len(raw) * 4 > limit and len(raw.encode()) > limit

    def handle(self, raw):
        ack = None
        try:
            envelope = _decode(raw, schemas.frame_schema)
            ack = envelope["ack"]
            handler = self.HANDLERS.get(envelope["event"])
            if handler is None:
                raise ClientError("unknown_event", f"Unknown event {envelope['event']!r}.")
            schema, method = handler
            data = envelope["data"] if envelope["data"] is not None else {}
            try:
                body = schema.load(data)
            except ValidationError as e:
                errors = e.messages if isinstance(e.messages, dict) else {"_schema": e.messages}
                raise ClientError("invalid_request", "The event did not validate.", errors) from None
            with db.connection_context():
                result = method(self, body)
        except ClientError as e:
            return self.reply("error", e.data, ack)
        except domain.SessionNotFound:
            return self.reply("error", {"error": "session_not_found", "message": "Session not found."}, ack)
        except Busy:
            return self.reply("error", {"error": "database_busy", "message": "Database busy; retry."}, ack)
        except QuotaExceeded as e:
            return self.reply("error", {"error": "quota_exceeded", "message": str(e)}, ack)
        except Exception as e:
            failure = storage_failure(e)
            if failure is None:
                raise  # unexpected: the connection closes with 1011 (updates)
            return self.reply("error", {"error": "storage_unavailable", "message": failure.reason}, ack)
        if ack is not None:
            self.reply("ack", result, ack)

    def reply(self, event, data, ack):
        message = {"event": event, "data": data}
        if ack is not None:
            message["ack"] = ack
        self.send(schemas.to_json(message))

    def _session(self, body):
        return domain.find_session(self.account_id, body["sid"])

    def on_message(self, body):
        rows = domain.append_messages(self.account_id, body["sid"], [body], origin=self.subscriber, agent=True)
        return schemas.appended_message_schema.dump(rows[0])

    def on_metadata(self, body):
        ok, version, value = domain.compare_and_set(
            self._session(body), "metadata", body["metadata"], body["expected_version"], origin=self.subscriber)
        return schemas.metadata_result.dump(
            {"result": "success" if ok else "version-mismatch", "version": version, "metadata": value})

    def on_state(self, body):
        ok, version, value = domain.compare_and_set(
            self._session(body), "agent_state", body["agent_state"], body["expected_version"],
            origin=self.subscriber)
        return schemas.agent_state_result.dump(
            {"result": "success" if ok else "version-mismatch", "version": version, "agent_state": value})

    def on_alive(self, body):
        domain.presence.alive(self._session(body), body["time"], body["thinking"])
        return {}

    def on_end(self, body):
        domain.presence.end(self._session(body), body["time"])
        return {}

    def on_ping(self, body):
        return {}

    HANDLERS = {
        "message": (schemas.MessageFrameSchema(), on_message),
        "update-metadata": (schemas.MetadataFrameSchema(), on_metadata),
        "update-state": (schemas.AgentStateFrameSchema(), on_state),
        "session-alive": (schemas.AliveFrameSchema(), on_alive),
        "session-end": (schemas.EndFrameSchema(), on_end),
        "ping": (schemas.PingSchema(), on_ping),
    }


def watch_tokens(interval):
    """Close every open connection whose token has been revoked (by any process, e.g. the CLI)."""
    while True:
        time.sleep(interval)
        open_connections = hub.subscribers()
        if not open_connections:
            continue
        try:
            with db.connection_context():
                valid = {token_id for (token_id,) in Token.select(Token.id).tuples()}
        except Exception:
            log.exception("token check failed; retrying next interval")
            continue
        for subscriber in open_connections:
            if subscriber.token_id not in valid:
                hub.close(subscriber, CLOSE_UNAUTHORIZED, "Token revoked.")


@sock.route("/v1/updates", bp=bp)
def updates(ws):
    """Real-time updates for one account (websocket)."""
    try:
        Connection(ws, current_app.config).run()
    except OSError:
        hang_up(ws)  # the peer vanished or stopped reading past the send timeout
    except ConnectionClosed:
        pass
    except Exception:
        internal_error(ws)
    linger(ws)


def linger(ws):
    """Let the peer read the close frame before the server closes the socket. Closed with bytes still
    unread, the kernel resets the connection and the peer loses what was still on its way: a client still
    sending when it was closed with 1008 or 1009 saw 1005, no code. So FIN right after the last frame,
    then what the peer still sends is read and dropped until it closes too, for a bounded time."""
    deadline = time.monotonic() + CLOSE_LINGER_SECONDS
    try:
        ws.sock.shutdown(socket.SHUT_WR)
        ws.thread.join(CLOSE_LINGER_SECONDS)  # its reader stops at its next read: then only this one reads
        while not ws.thread.is_alive() and (left := deadline - time.monotonic()) > 0:
            ws.sock.settimeout(left)
            if not ws.sock.recv(1 << 16):
                break
    except OSError:
        pass


def internal_error(ws):
    """Close with 1011 after an unexpected error. It must never reach Flask, whose 500 answer would
    be written into the upgraded stream."""
    log.exception("websocket handler failed")
    try:
        ws.close(CLOSE_INTERNAL_ERROR, "Internal error.")
    except (ConnectionClosed, OSError):
        pass
