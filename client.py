#!/usr/bin/env python3
"""Connect any agent, script or command to a Switchboard server: one file, Python 3.9+ standard library.

Get it from the server itself (`curl -O http://HOST:PORT/client.py`), then either wrap a command:

    python client.py run -- ./long-build.sh --all

or use it as a library:

    from client import Switchboard
    session = Switchboard("http://127.0.0.1:8000", "sb_...").session("nightly-report", title="Nightly report")
    session.send({"text": "starting"})
    for message in session.inbox():          # what people type in the browser
        session.send({"text": "you said " + message["content"]})

Every call retries network errors, 5xx and 429/503 answers (honouring Retry-After) with exponential
backoff; messages carry localIds, so a batch sent twice is stored once. `python client.py --help` says more.
"""
import argparse
import collections
import http.client
import itertools
import json
import os
import random
import secrets
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

try:
    import fcntl  # the wrapper needs a Unix-like system; the library does not
except ImportError:
    fcntl = None
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux; Python < 3.10 does not name it

__all__ = ["Switchboard", "Session", "SwitchboardError"]

BATCH = 100  # messages per POST: the server's limit
LINGER = 0.2  # seconds a message may wait for others to share its POST
OWN_OUTPUT_PAUSE = 0.2  # seconds inbox() rests after a wake-up by this object's own messages
HEARTBEAT = 5.0  # seconds between `alive` heartbeats while a wrapped command runs
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 8.0  # seconds: the first retry's pause, doubling up to the longest
RETRY_AFTER_MAX = 120.0  # a Retry-After longer than this is not waited for in one piece
MAX_LINE_CHARS = 16_384  # a longer output line is sent as several messages (nothing is cut off)
PARTIAL_LINE_WAIT = 0.2  # seconds: output without a newline (a prompt) is sent after this much quiet
MAX_PARTIAL_BYTES = 1 << 16  # ... or once this long
REDRAWN_EVERY = 1.0  # seconds between two states sent of a line redrawn in place (a progress bar)
ROLES = (None, "user", "assistant", "system", "tool")
TITLE_CHARS = 120


class SwitchboardError(Exception):
    """The server refused a request (4xx), or it stayed unreachable for longer than allowed."""

    def __init__(self, message, status=None, answer=None):
        super().__init__(message)
        self.status = status
        self.answer = answer


class _Ambiguous(Exception):
    """A failure after which the request may or may not have been carried out."""


def _pause(attempt, retry_after=None):
    delay = min(BACKOFF_FIRST * 2 ** attempt, BACKOFF_MAX)
    delay *= random.uniform(0.8, 1.2)  # clients that failed together do not all retry together
    # Retry-After is the least wait (never a busy loop on "0"), capped so a typo cannot stall for a day.
    return delay if retry_after is None else min(max(retry_after, delay), RETRY_AFTER_MAX)


_encode = json.JSONEncoder(separators=(",", ":")).encode


def _retry_after(value):
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


class Switchboard:
    """A server and a token. Thread-safe: each thread keeps its own keep-alive connection.

    `retry_for` bounds how long one call keeps retrying (None: for ever); `timeout` is per attempt.
    `url` and `token` default to the SWITCHBOARD_URL and SWITCHBOARD_TOKEN environment variables.
    """

    def __init__(self, url=None, token=None, retry_for=300.0, timeout=30.0):
        url = url or os.environ.get("SWITCHBOARD_URL")
        token = token or os.environ.get("SWITCHBOARD_TOKEN")
        if not url or not token:
            raise ValueError("a server URL and a token are needed (or SWITCHBOARD_URL and SWITCHBOARD_TOKEN)")
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._connect_to = (http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection,
                            parts.hostname, parts.port)
        self._base = parts.path.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                         "User-Agent": "switchboard-client.py/1"}
        self.retry_for = retry_for
        self.timeout = timeout
        self._local = threading.local()

    def session(self, tag, title=None, metadata=None, **options):
        """The session with this tag (created on first use), with `title` set when given."""
        return Session(self, tag, title, metadata, **options)

    # --- HTTP -----------------------------------------------------------------------------------

    def _once(self, method, path, payload, timeout, stale_retry=True, meanwhile=None):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind, host, port = self._connect_to
            connection = self._local.connection = kind(host, port, timeout=timeout)
        connection.timeout = timeout
        reused = connection.sock is not None
        if reused:
            connection.sock.settimeout(timeout)
        headers = dict(self._headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, self._base + path, body=payload, headers=headers)
            if meanwhile is not None:
                meanwhile()
            response = connection.getresponse()
            data = response.read()
        except BaseException as e:
            connection.close()
            self._local.connection = None
            # The server closes keep-alive connections left idle (gunicorn: after 2 s): a request
            # that meets a closed one was never read, and goes again at once on a new connection.
            if stale_retry and reused and isinstance(e, (http.client.RemoteDisconnected, ConnectionError)):
                return self._once(method, path, payload, timeout, stale_retry=False)
            raise
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
            self._local.connection = None
        return response.status, response, data

    def request(self, method, path, body=None, *, query=None, timeout=None, deadline=None, recover=None,
                meanwhile=None):
        """One API call; its JSON answer. Network errors, 5xx, 429 and 503 are retried with backoff until
        `deadline` (a time.monotonic() value, or a function giving one; None: `retry_for` from now).
        `body`: a JSON value, or bytes already encoded.

        `recover`, for a request that is not safe to repeat, runs before each retry that follows a
        failure that may have reached the server; when it returns an answer, that is the answer.
        `meanwhile()` runs while the server works on each attempt."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        payload = body if body is None or isinstance(body, bytes) else _encode(body).encode("utf-8")
        if deadline is None and self.retry_for is not None:
            deadline = time.monotonic() + self.retry_for
        for attempt in itertools.count():
            retry_after, problem = None, None
            try:
                status, response, data = self._once(method, path, payload, timeout or self.timeout,
                                                    stale_retry=recover is None, meanwhile=meanwhile)
            except (OSError, http.client.HTTPException) as e:
                problem = _Ambiguous(f"{self.url}: {e.__class__.__name__}: {e}")
            else:
                if status < 300:
                    return json.loads(data) if data else None
                try:
                    answer = json.loads(data)
                except ValueError:
                    answer = {"message": data[:200].decode("utf-8", "replace")}
                said = answer.get("message") or answer.get("error") if isinstance(answer, dict) else answer
                text = f"{method} {path}: {status} {said}"
                if status in (429, 503):  # refused before any work: safe to repeat
                    retry_after = _retry_after(response.getheader("Retry-After"))
                    problem = SwitchboardError(text, status, answer)
                elif status >= 500:
                    problem = _Ambiguous(text)
                else:
                    raise SwitchboardError(text, status, answer)
            if recover is not None and isinstance(problem, _Ambiguous):
                try:
                    found = recover()
                except (OSError, http.client.HTTPException, SwitchboardError, ValueError):
                    found = None
                if found is not None:
                    return found
            pause = _pause(attempt, retry_after)
            limit = deadline() if callable(deadline) else deadline
            if limit is not None and time.monotonic() + pause > limit:
                raise SwitchboardError(f"gave up after {attempt + 1} attempts: {problem}",
                                       getattr(problem, "status", None)) from None
            time.sleep(pause)


class _Item:
    """One message waiting to be sent; one without a role also as it goes in a batch's JSON (`json`),
    encoded ahead, while the server works on the batch before it."""
    __slots__ = ("content", "role", "local_id", "metadata", "json")

    def __init__(self, content, role, local_id, metadata=None, encoded=None):
        self.content, self.role, self.local_id, self.metadata = content, role, local_id, metadata
        if role is None and encoded is None:
            encoded = _encode({"content": content, "localId": local_id})
        self.json = encoded


class _Output:
    """Complete lines a command printed, as read (bytes, each line ending in a newline): turned into
    messages only when they are sent, so reading them costs the wrapper next to nothing per line.
    `progress`: the state so far of a line still being redrawn (see _Wrapper.pump)."""
    __slots__ = ("stream", "data", "lines", "progress")

    def __init__(self, stream, data, progress=False):
        self.stream, self.data, self.lines, self.progress = stream, data, data.count(b"\n"), progress


class Session:
    """One session: messages go out in the background, in order, in batches of up to 100.

    Messages wait in a bounded buffer (`max_buffer` messages, `max_buffer_bytes`) while the server is
    away. When it is full a message is dropped and counted (`dropped`), and a system message saying how
    many were lost takes their place in the session. `connect=False` defers creating the session to the
    background sender (the wrapper starts its command without waiting for the server).
    """

    def __init__(self, client, tag, title=None, metadata=None, *, connect=True, max_buffer=1_000_000,
                 max_buffer_bytes=256 << 20):
        self.client = client
        self.tag = tag
        self.title = title.strip()[:TITLE_CHARS] if title and title.strip() else None
        self.metadata = metadata if metadata is None or isinstance(metadata, str) else json.dumps(metadata)
        self.id = None
        self.seq = None  # the session's seq when it was created or loaded: inbox() starts after it
        self.dropped = 0  # messages (lines) the full buffer refused
        self.undelivered = 0  # messages given up on (server away past the retry deadline)
        self.error = None  # why the server refused the session (then nothing more is sent)
        self.max_buffer, self.max_buffer_bytes = max_buffer, max_buffer_bytes
        self._run = secrets.token_hex(8)  # localIds are `<run>-<n>`: unique to this object
        self._numbers = itertools.count(1)
        self._cond = threading.Condition()
        self._entries = collections.deque()  # _Item or _Output, in order
        self._lines = self._bytes = 0  # what the entries hold
        self._oldest = 0.0  # when the oldest entry arrived
        self._queued = self._done = 0  # entries ever accepted / entries delivered or given up on
        self._reported = 0  # undelivered messages flush() has already raised about
        self._unreported_drops = 0
        self._flushing = 0
        self._closing = False
        self._give_up_at = None  # while closing: deliver until then
        self._ready = collections.deque()  # the sender's: (_Item, ends an entry) taken from _entries
        self._own = collections.deque()  # [first, last] seq ranges the server acknowledged to this object
        self._connected = threading.Event()
        self._sender = None
        if connect:
            self._connect()

    # --- the session itself ---------------------------------------------------------------------

    def _connect(self, deadline=None):
        body = {"tag": self.tag, "metadata": self.metadata or ""}
        answer = self.client.request("POST", "/v1/sessions", body, deadline=deadline)["session"]
        if self.title:
            self.client.request("PATCH", f"/api/sessions/{answer['id']}", {"title": self.title}, deadline=deadline)
        self.id, self.seq = answer["id"], answer["seq"]
        self._connected.set()

    def wait_connected(self, timeout=None):
        return self._connected.wait(timeout)

    def alive(self, thinking=False):
        """A presence heartbeat. Best effort: one attempt; False if it did not reach the server."""
        if self.id is None:
            return False
        try:
            self.client.request("POST", f"/v1/sessions/{self.id}/alive", {"thinking": bool(thinking)},
                                deadline=time.monotonic())
            return True
        except SwitchboardError:
            return False

    def end(self, timeout=None):
        """Deliver what is buffered, then mark the session inactive; stops the background sender."""
        self.close(timeout)
        if self.id is not None:
            self.client.request("POST", f"/v1/sessions/{self.id}/end", {},
                                deadline=None if timeout is None else time.monotonic() + timeout)
        self._raise_undelivered()

    def usage(self, key, tokens, model=None, cost=None, time=None):
        """Report the session's token usage under `key`, replacing the previous report of that key.
        `tokens`: {input, output, cache_creation, cache_read} (missing ones are 0); `cost`: USD (when
        None, the server prices the tokens by `model`); `time`: when it was used (epoch ms; default
        now). Returns the server's answer, {success, reportId, cost: {total}, ...}."""
        self._connected.wait()
        body = {"key": key, "model": model, "tokens": dict(tokens)}
        if cost is not None:
            body["cost"] = {"total": cost}
        if time is not None:
            body["time"] = int(time)
        return self.client.request("POST", f"/v1/sessions/{self.id}/usage", body)

    # --- sending --------------------------------------------------------------------------------

    def send(self, content, role=None, local_id=None):
        """Queue a message (any JSON value; with a role, text or JSON as the management API takes it).
        Returns False when the full buffer dropped it. Sent within 200 ms, in order, exactly once."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if self.error is not None:
            raise self.error
        if self._closing:
            raise SwitchboardError("this session object was closed: send() after end() or close()")
        item = _Item(content, role, local_id or self._new_local_id())
        text = item.json if item.json is not None else content if isinstance(content, str) else _encode(content)
        return self._put(item, 1, len(text))

    def _new_local_id(self):
        return f"{self._run}-{next(self._numbers)}"

    def _put_output(self, stream, data, progress=False):
        """Lines a wrapped command printed (bytes ending in a newline): as many as the buffer has room
        for; the rest are dropped and counted."""
        with self._cond:  # a re-entrant lock: _put takes it again
            lines = data.count(b"\n")
            room = max(0, min(lines, self.max_buffer - self._lines))
            if room < lines and not (self._closing or self.error is not None):
                cut = 0
                for _ in range(room):
                    cut = data.index(b"\n", cut) + 1
                if cut:
                    self._put(_Output(stream, data[:cut], progress), room, cut)
                self.dropped += lines - room
                self._unreported_drops += lines - room
                return False
            return self._put(_Output(stream, data, progress), lines, len(data))

    def _put(self, entry, lines, size, force=False):
        size += 64 * lines  # what each message costs beyond its content, roughly
        with self._cond:
            if self._closing or self.error is not None:
                return False
            if not force and (self._lines + lines > self.max_buffer or self._bytes + size > self.max_buffer_bytes):
                self.dropped += lines
                self._unreported_drops += lines
                return False
            if not self._entries:
                self._oldest = time.monotonic()
            if self._unreported_drops:
                self._append(self._drop_notice(), 1, 64)
            self._append(entry, lines, size)
            if self._sender is None:
                self._sender = threading.Thread(target=self._send_forever, daemon=True, name="switchboard-sender")
                self._sender.start()
            if len(self._entries) == 1 or self._lines >= BATCH:
                self._cond.notify_all()
            return True

    def _append(self, entry, lines, size):
        self._entries.append((entry, lines, size))
        self._lines += lines
        self._bytes += size
        self._queued += 1

    def _drop_notice(self):
        count, self._unreported_drops = self._unreported_drops, 0
        text = (f"{count} message{'s' if count != 1 else ''} dropped here: the server was unreachable and the "
                f"client's buffer ({self.max_buffer} messages) was full.")
        return _Item(text, "system", self._new_local_id(), {"type": "dropped", "dropped": count})

    def flush(self, timeout=None):
        """Wait until everything sent so far is acknowledged. Raises SwitchboardError if some of it was
        given up on (the server stayed away past `retry_for`) or the server refused the session."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._done < target and self._sender is not None and self._sender.is_alive():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1
        self._raise_undelivered()
        return self._done >= target

    def close(self, timeout=None):
        """Stop the background sender once it has delivered everything queued, or `timeout` seconds
        pass (then what is left is counted in `undelivered`)."""
        with self._cond:
            if self._unreported_drops:
                self._append(self._drop_notice(), 1, 64)
            self._closing = True
            if timeout is not None:
                self._give_up_at = time.monotonic() + timeout
            self._cond.notify_all()
            sender = self._sender
        if sender is not None:
            sender.join()

    def _raise_undelivered(self):
        if self.error is not None:
            raise self.error
        with self._cond:
            missing, self._reported = self.undelivered - self._reported, self.undelivered
        if missing:
            raise SwitchboardError(f"{missing} message(s) could not be delivered: the server stayed unreachable")

    def _take(self, block=True):
        """The next entry's messages into _ready, waiting for one as needed (unless not `block`); False
        once closed and empty. An entry waits up to LINGER for others to fill a batch, unless a flush or
        close is asked for."""
        with self._cond:
            while True:
                if self._entries:
                    due = self._oldest + LINGER - time.monotonic()
                    if self._lines >= BATCH or self._closing or self._flushing or due <= 0:
                        break
                    if not block:
                        return False
                    self._cond.wait(due)
                elif self._closing or not block:
                    return False
                else:
                    self._cond.wait()
            entry, lines, size = self._entries.popleft()
            self._lines -= lines
            self._bytes -= size
            if self._entries:
                self._oldest = time.monotonic() - LINGER  # the rest have waited already: they go next
        if isinstance(entry, _Item):
            self._ready.append((entry, True))
            return True
        items, head = [], '{"content":{"type":"output","stream":"' + entry.stream + '","text":'
        tail = ',"progress":true}' if entry.progress else "}"
        for line in entry.data.decode("utf-8", "replace").split("\n")[:-1]:
            if line.endswith("\r"):
                line = line[:-1]
            for start in range(0, max(len(line), 1), MAX_LINE_CHARS):
                local_id = self._new_local_id()
                encoded = f'{head}{_encode(line[start:start + MAX_LINE_CHARS])}{tail},"localId":"{local_id}"}}'
                items.append((_Item(None, None, local_id, encoded=encoded), False))
        items[-1] = (items[-1][0], True)
        self._ready.extend(items)
        return True

    def _prepare(self):
        """While the server works on a batch: the messages of the next one turned into JSON, as far as
        they have arrived (nothing waits here)."""
        while len(self._ready) < BATCH and self._take(block=False):
            pass

    def _next_batch(self):
        """Up to BATCH messages without a role, or one with a role; None once closed and empty."""
        batch = []
        while len(batch) < BATCH:
            if not self._ready:
                if batch:
                    with self._cond:
                        if not self._entries:
                            break  # send what is ready now rather than wait for more
                if not self._take():
                    break
            item = self._ready[0][0]
            if item.role is not None and batch:
                break  # a message with a role goes over the management API, on its own
            batch.append(self._ready.popleft())
            if item.role is not None:
                break
        return batch or None

    def _deadline(self, started):
        limits = [t for t in (self._give_up_at,
                              None if self.client.retry_for is None else started + self.client.retry_for)
                  if t is not None]
        return min(limits) if limits else None

    def _send_forever(self):
        started = time.monotonic()
        try:
            if self.id is None:
                self._connect(deadline=lambda: self._deadline(started))
        except SwitchboardError as e:
            self._fail(e)
            return
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            started = time.monotonic()
            try:
                self._deliver([item for item, _ in batch], lambda: self._deadline(started))
            except (KeyError, TypeError, ValueError) as e:  # an answer not in the documented shape
                self._fail(SwitchboardError(f"unexpected answer from the server: {e!r}"), batch)
                return
            except SwitchboardError as e:
                if e.status is not None and 400 <= e.status < 500 and e.status not in (408, 429):
                    self._fail(e, batch)  # refused, not unreachable: retrying cannot help
                    return
                with self._cond:
                    self.undelivered += len(batch)
                    self._done += sum(1 for _, ends in batch if ends)
                    if self._closing:  # the drain time is over: the rest is undelivered too
                        self._abandon()
                    self._cond.notify_all()
                continue
            with self._cond:
                self._done += sum(1 for _, ends in batch if ends)
                self._cond.notify_all()

    def _abandon(self):
        self.undelivered += self._lines + len(self._ready)
        self._done = self._queued
        self._entries.clear()
        self._ready.clear()
        self._lines = self._bytes = 0

    def _fail(self, error, batch=()):
        with self._cond:
            self.error = error
            self.undelivered += len(batch)
            self._abandon()
            self._cond.notify_all()

    def _acknowledged(self, seqs):
        with self._cond:
            for seq in seqs:
                if self._own and self._own[-1][1] == seq - 1:
                    self._own[-1][1] = seq
                else:
                    self._own.append([seq, seq])
            self._cond.notify_all()

    def _deliver(self, batch, deadline):
        if batch[0].role is None:
            body = '{"messages":[' + ",".join(item.json for item in batch) + "]}"
            answer = self.client.request("POST", f"/v3/sessions/{self.id}/messages", body.encode("utf-8"),
                                         deadline=deadline, meanwhile=self._prepare)
            self._acknowledged(m["seq"] for m in answer["messages"])
            return
        # A message with a role goes through the management API, which takes no localId: it rides in
        # the message's metadata, and after a failure that may have reached the server the message is
        # looked for before it is sent again.
        [item] = batch
        metadata = dict(item.metadata or {}, localId=item.local_id)
        answer = self.client.request(
            "POST", f"/api/sessions/{self.id}/messages",
            {"role": item.role, "content": item.content, "metadata": metadata},
            deadline=deadline, recover=lambda: self._find_sent(item.local_id), meanwhile=self._prepare)
        self._acknowledged([answer["seq"]])

    def _find_sent(self, local_id):
        with self._cond:
            after = self._own[-1][1] if self._own else self.seq
        while True:
            page = self.client.request("GET", f"/v3/sessions/{self.id}/messages",
                                       query={"after_seq": after, "limit": 500}, deadline=time.monotonic())
            for message in page["messages"]:
                if isinstance(message.get("metadata"), dict) and message["metadata"].get("localId") == local_id:
                    return message
            if not page["hasMore"]:
                return None
            after = page["messages"][-1]["seq"]

    # --- receiving ------------------------------------------------------------------------------

    def inbox(self, after_seq=None, wait=30):
        """What people send to this session: every message with role "user" posted after `after_seq`
        (default: the session's seq when this object created or loaded it), oldest first, for ever.

        One long-poll at a time, `wait` seconds each. What this object sent is skipped without being
        read back: its seqs are known from the server's acknowledgements, and a poll asks for one
        message at a time, so a wake-up by the agent's own output costs one row, not the whole batch;
        while that output streams, polls come at most every 200 ms."""
        self._connected.wait()
        cursor = self.seq if after_seq is None else after_seq
        while True:
            cursor = self._past_own(cursor)
            page = self.client.request("GET", f"/v3/sessions/{self.id}/messages",
                                       query={"after_seq": cursor, "wait": wait, "limit": 1},
                                       timeout=wait + self.client.timeout)
            for message in page["messages"]:
                if self._mine(message):
                    with self._cond:  # its acknowledgement is on its way to the sender: wait for it
                        self._cond.wait_for(lambda: self._owns(message["seq"]), timeout=self.client.timeout)
                    # Woken by our own output: while it streams, look again a little later rather than
                    # after every batch (a person's message then waits up to this much longer).
                    time.sleep(OWN_OUTPUT_PAUSE)
                elif message.get("role") == "user":
                    yield message
                cursor = max(cursor, message["seq"])

    def _mine(self, message):
        prefix = self._run + "-"
        metadata = message.get("metadata")
        return (str(message.get("localId") or "").startswith(prefix)
                or (isinstance(metadata, dict) and str(metadata.get("localId") or "").startswith(prefix)))

    def _owns(self, seq):
        return any(first <= seq <= last for first, last in self._own)

    def _past_own(self, cursor):
        """The cursor moved past every seq right after it that this object sent; older ranges forgotten."""
        with self._cond:
            while self._own and self._own[0][0] <= cursor + 1:
                cursor = max(cursor, self._own.popleft()[1])
        return cursor


# --- python client.py run -- CMD ------------------------------------------------------------------

class _Pipe:
    """One of the command's output pipes, as _Wrapper.pump reads it."""

    def __init__(self, stream, echo):
        self.stream = stream  # "stdout" or "stderr"
        self.echo = echo  # where it is echoed; None once that was closed
        self.partial = b""  # the last line read, until its newline comes
        self.last = 0.0  # when it was last read from
        self.begun = 0.0  # when `partial` began
        self.shown = 0.0  # when a state of `partial` was last sent as progress


# What tells a program writing into a pipe to colour anyway: FORCE_COLOR (Node's chalk, pytest, rich),
# CLICOLOR_FORCE (BSD tools, CMake, Ninja), PY_COLORS (pytest, tox); NO_COLOR that it must not.
_FORCE_COLOR = {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1", "PY_COLORS": "1"}


def _command_env(color, terminal):
    """The command's environment for --color `color`; `terminal`: the wrapper's stdout is one."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if color == "auto":
        # CMD writes into a pipe here, where most programs stop colouring; on a terminal they would
        # have coloured, and the browser shows colours too. What the environment already says stands.
        if not terminal or any(name in env for name in (*_FORCE_COLOR, "NO_COLOR")):
            return env
        color = "always"
    for name in (*_FORCE_COLOR, "NO_COLOR"):
        env.pop(name, None)
    env.update(_FORCE_COLOR if color == "always" else {"NO_COLOR": "1"})
    return env


class _Wrapper:
    """Runs a command and mirrors it into a session (see `run --help`)."""

    def __init__(self, session, command, drain, env):
        self.session = session
        self.command = command
        self.drain = drain
        self.env = env
        self.last_output = 0.0
        self.stop = threading.Event()
        self.told = False  # the person was told the server refused the session

    def run(self):
        # Caught before the command starts: it then gets their default actions (an exec resets caught
        # signals, but keeps ignored ones: a wrapper started with SIGINT ignored, as a shell's
        # background job is, made a command Ctrl-C could not stop).
        forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
        self.proc, self.pending = None, []
        for number in forwarded:
            signal.signal(number, self.forward)
        try:
            # Its own process group: Ctrl-C reaches the command once, through the wrapper (below).
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=self.env, start_new_session=True)
        except OSError as e:
            print(f"switchboard: cannot run {self.command[0]!r}: {e}", file=sys.stderr)
            return self.finish(127, None, f"Could not start {shlex.join(self.command)}: {e.strerror or e}")
        for number in self.pending:  # arrived while it was starting
            self.forward(number, None)
        # Room for a burst: the command writes on while the reader waits its turn for the GIL.
        for pipe in (self.proc.stdout, self.proc.stderr):
            try:
                fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, 1 << 20)
            except OSError:  # above the system's pipe-max-size: the default size it is
                pass
        reader = threading.Thread(target=self.pump, daemon=True, args=(
            ((self.proc.stdout, "stdout", sys.stdout), (self.proc.stderr, "stderr", sys.stderr)),))
        # The kernel hands a signal to any thread that does not block it, but only the main thread runs
        # Python's handlers: every other thread (they inherit this mask, the sender too) blocks them, so
        # a signal always interrupts the main thread's wait below instead of waiting for it to end.
        signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)
        try:
            for thread in (reader, threading.Thread(target=self.beat, daemon=True),
                           threading.Thread(target=self.feed, daemon=True)):
                thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
        code = self.proc.wait()
        reader.join(5)  # what is left in the pipes; a background child may hold them open
        self.stop.set()
        # From now on Ctrl-C ends the wrapper (it gives up delivering what is left).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(number, signal.SIG_DFL)
        if code < 0:
            name = signal.Signals(-code).name
            return self.finish(128 - code, name, f"Killed by {name} (exit code {128 - code}).")
        return self.finish(code, None, f"Exited with code {code}.")

    def forward(self, number, frame):
        if self.proc is None:
            self.pending.append(number)
            return
        try:
            os.killpg(self.proc.pid, number)
        except ProcessLookupError:
            pass

    def pump(self, pipes):
        """Read what the command prints, as fast as it prints it: whole chunks, echoed here and queued
        as they are (lines become messages in the sender). One thread reads both pipes, whichever is
        ready, so a stderr line printed a millisecond after a stdout line is queued after it: with a
        thread per pipe, lines were queued in the order the threads got the GIL (10 lines 1 ms apart,
        alternating: 6 runs of 10 in order, against 10 of 10 now). A line still without its newline
        after PARTIAL_LINE_WAIT of quiet (a prompt) goes as it is.

        A line redrawn in place (carriage returns: a progress bar) would show only once it ends. Its
        state as a terminal shows it (the text after its last carriage return) goes as a message marked
        `progress` once the line is REDRAWN_EVERY old and then every REDRAWN_EVERY while it is
        redrawn, or after PARTIAL_LINE_WAIT of quiet; the line itself still goes, whole, when it ends."""
        put = self.session._put_output
        open_ = {pipe.fileno(): _Pipe(stream, echo.buffer) for pipe, stream, echo in pipes}
        while open_:
            quiet = [p.last + PARTIAL_LINE_WAIT for p in open_.values() if p.partial and p.last > p.shown]
            timeout = max(0.0, min(quiet) - time.monotonic()) if quiet else None
            ready = select.select(list(open_), [], [], timeout)[0]
            now = time.monotonic()
            for fd, p in open_.items():
                if p.partial and fd not in ready and p.last > p.shown and now - p.last >= PARTIAL_LINE_WAIT:
                    if b"\r" in p.partial:
                        self.progress(p, now)
                    else:
                        put(p.stream, p.partial + b"\n")
                        p.partial = b""
            for fd in ready:
                p = open_[fd]
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    if p.partial:
                        put(p.stream, p.partial + b"\n")
                    del open_[fd]
                    continue
                self.last_output = p.last = now
                if p.echo is not None:
                    try:
                        p.echo.write(chunk)
                        p.echo.flush()
                    except (OSError, ValueError):  # our own output was closed: mirror on, echo no more
                        p.echo = None
                data = p.partial + chunk if p.partial else chunk
                cut = data.rfind(b"\n") + 1
                if cut:
                    put(p.stream, data[:cut])
                if cut or not p.partial:
                    p.begun = now
                p.partial = data[cut:]
                if len(p.partial) >= MAX_PARTIAL_BYTES:
                    put(p.stream, p.partial + b"\n")
                    p.partial = b""
                elif b"\r" in p.partial and now - max(p.begun, p.shown) >= REDRAWN_EVERY:
                    self.progress(p, now)

    def progress(self, pipe, now):
        """The state a line being redrawn shows now, sent as progress."""
        pipe.shown = now
        state = pipe.partial.rstrip(b"\r")
        state = state[state.rfind(b"\r") + 1:]
        if state:
            self.session._put_output(pipe.stream, state + b"\n", progress=True)

    def beat(self):
        """Heartbeats while CMD runs; and if the server refuses the session (a bad token), say so now."""
        while not self.stop.is_set():
            if self.session.error is not None:
                return self.tell_refused()
            if self.session.id is None:
                self.stop.wait(0.2)
                continue
            self.session.alive(thinking=time.monotonic() - self.last_output < HEARTBEAT)
            self.stop.wait(HEARTBEAT)

    def tell_refused(self):
        if not self.told:
            self.told = True
            print(f"switchboard: not mirrored (the command runs on): {self.session.error}", file=sys.stderr)

    def feed(self):
        """What people type in the browser, a line at a time, to the command's stdin."""
        try:
            for message in self.session.inbox():
                content = message["content"]
                text = content if isinstance(content, str) else json.dumps(content)
                try:
                    self.proc.stdin.write((text if text.endswith("\n") else text + "\n").encode("utf-8"))
                    self.proc.stdin.flush()
                except OSError:  # the command closed its stdin or ended: it reads no more
                    pass
        except SwitchboardError as e:
            if self.session.error is None:
                print(f"switchboard: input from the browser stopped: {e}", file=sys.stderr)

    def finish(self, code, signal_name, text):
        session = self.session
        metadata = {"type": "exit", "exitCode": code, "signal": signal_name, "dropped": session.dropped}
        session._put(_Item(text, "system", session._new_local_id(), metadata), 1, 64, force=True)
        try:
            session.close(self.drain)
            if session.error is None and session.id is not None:
                session.client.request("POST", f"/v1/sessions/{session.id}/end", {},
                                       deadline=time.monotonic() + max(1.0, self.drain))
        except SwitchboardError:
            pass
        except KeyboardInterrupt:
            print("switchboard: interrupted: what was not delivered yet is lost", file=sys.stderr)
            return code
        if session.error is not None:
            self.tell_refused()
        elif session.dropped or session.undelivered:
            print(f"switchboard: {session.dropped} line(s) dropped (buffer full while the server was away), "
                  f"{session.undelivered} not delivered before giving up", file=sys.stderr)
        return code


# --- Claude Code transcripts: python client.py import-claude / report-usage ----------------------

CLAUDE_TAG = "claude:"  # the tag prefix the server's hooks give a Claude Code session
CLAUDE_MESSAGE_TYPES = ("user", "assistant", "system")  # other record types are Claude Code's own bookkeeping
MAX_CONTENT_BYTES = 1_000_000  # under the server's default 1 MiB per message: bigger content is cut
MAX_ROLE_TEXT = 50_000  # text of a message with a role is 1..50,000 characters; else sent as a text block
MAX_BATCH_BYTES = 8 << 20  # half the server's default body limit
SHOWN_BAD_LINES = 20
PROGRESS_EVERY = 0.2  # seconds between progress lines on a terminal
USAGE_FIELDS = (("input", "input_tokens"), ("output", "output_tokens"),
                ("cache_creation", "cache_creation_input_tokens"), ("cache_read", "cache_read_input_tokens"))


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _epoch_ms(text):
    """A transcript timestamp (ISO 8601) in epoch ms, or None."""
    if not isinstance(text, str):
        return None
    head, dot, rest = text.replace("Z", "+00:00").partition(".")
    if dot:  # Python 3.9's fromisoformat takes 3 or 6 digits of fraction only
        digits = len(rest) - len(rest.lstrip("0123456789"))
        head += "." + (rest[:digits] + "000000")[:6] + rest[digits:]
    try:
        parsed = datetime.fromisoformat(head)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    # Integer arithmetic: timestamp() * 1000 is a float product and can lose a millisecond.
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def _transcript_lines(path, bad):
    """(line number, record) for every JSON object line of a .jsonl file, read a line at a time. A line
    that is not one (a truncated last line, a stray write) is named in `bad` as "path:line" and skipped;
    bytes that are not UTF-8 become U+FFFD."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                record = None
            if not isinstance(record, dict):
                bad.append(f"{path}:{number}")
                continue
            yield number, record


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class TranscriptUsage:
    """A Claude Code session's token usage, from its transcript lines: every assistant line of the
    session (sidechains included: subagents are billed too) counted once per API message (`message.id`;
    Claude Code writes one line per content block, one after another, each repeating the message's
    usage: the last of them wins), summed per UTC day and model. Records of other sessions (a resumed
    session's file starts with its predecessor's) count for those, not for this one. Only the ids of
    the messages counted are kept, so memory grows by an id per API message, not by a line."""

    def __init__(self, session_id):
        self.session_id = session_id
        self._counted = set()  # message ids summed already
        self._current = None  # (message id, (day, model), tokens, ms) of the message being read
        self._sums = {}  # (day, model) -> [input, output, cache_creation, cache_read, latest ms]

    def add(self, record):
        message = record.get("message")
        if record.get("type") != "assistant" or not isinstance(message, dict):
            return
        if record.get("sessionId", self.session_id) != self.session_id:
            return
        usage, model = message.get("usage"), message.get("model")
        if not isinstance(usage, dict) or not isinstance(model, str) or model == "<synthetic>":
            return  # "<synthetic>": a message Claude Code wrote itself (an API error), no API call
        message_id = message.get("id") or record.get("uuid") or object()
        if message_id in self._counted:
            return  # a line of a message summed already (written again later)
        if self._current is not None and self._current[0] != message_id:
            self._close()
        ms = _epoch_ms(record.get("timestamp"))
        day = datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d") if ms is not None else "undated"
        self._current = (message_id, (day, model[:200]), [_count(usage.get(name)) for _, name in USAGE_FIELDS], ms)

    def _close(self):
        message_id, bucket, tokens, ms = self._current
        self._current = None
        self._counted.add(message_id)
        total = self._sums.setdefault(bucket, [0, 0, 0, 0, None])
        for i, n in enumerate(tokens):
            total[i] += n
        if ms is not None and (total[4] is None or ms > total[4]):
            total[4] = ms

    def add_file(self, path, bad):
        for _, record in _transcript_lines(path, bad):
            self.add(record)

    def add_subagents(self, path, bad):
        """The session's subagents' transcripts: `<path without .jsonl>/subagents/*.jsonl`, where
        Claude Code keeps them."""
        subagents = os.path.join(os.path.splitext(path)[0], "subagents")
        if os.path.isdir(subagents):
            for name in sorted(os.listdir(subagents)):
                if name.endswith(".jsonl"):
                    self.add_file(os.path.join(subagents, name), bad)

    def reports(self):
        """One usage report per (day, model), keyed `claude:<day>:<model>`: whoever reports it again
        (the import, the Stop hook) replaces it instead of adding to it."""
        if self._current is not None:
            self._close()
        for (day, model), total in sorted(self._sums.items()):
            if any(total[:4]):
                yield {"key": f"claude:{day}:{model}", "model": model, "time": total[4],
                       "tokens": {name: total[i] for i, (name, _) in enumerate(USAGE_FIELDS)}}


def transcript_usage(path, session_id, bad=None):
    """TranscriptUsage of the session whose transcript is `path`, its subagents' included."""
    bad = [] if bad is None else bad
    usage = TranscriptUsage(session_id)
    usage.add_file(path, bad)
    usage.add_subagents(path, bad)
    return usage


def _report_usage(client, session_id, usage):
    for report in usage.reports():
        client.request("POST", f"/v1/sessions/{session_id}/usage", report)


def claude_projects_dir():
    return os.path.join(os.environ.get("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude"), "projects")


def transcript_files(paths):
    """Every session transcript under `paths` (files or directories), in order. Subagent transcripts
    (in a `subagents` directory) are read with their session's, not as sessions of their own."""
    for path in paths:
        if os.path.isfile(path):
            yield path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d != "subagents")
            for name in sorted(files):
                if name.endswith(".jsonl"):
                    yield os.path.join(root, name)


def _fits(content):
    """Content the server takes in a message with a role: text of 1..50,000 characters goes as it is,
    other text as one text block; content over the size limit is cut (and said so). (content, cut)."""
    if isinstance(content, str) and not 1 <= len(content) <= MAX_ROLE_TEXT:
        content = [{"type": "text", "text": content}]
    size = len(json.dumps(content, ensure_ascii=False).encode("utf-8"))
    if size <= MAX_CONTENT_BYTES:
        return content, False
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    keep = MAX_CONTENT_BYTES // 8  # characters: at most 4 bytes each in UTF-8, and twice that as JSON escapes
    return [{"type": "text", "text": text[:keep] + f"\u2026 [cut by import-claude: {size} bytes in all]"}], True


class ClaudeImporter:
    """`python client.py import-claude`: see IMPORT_HELP. Counts what it did in its attributes."""

    def __init__(self, client, force=False, progress=None, out=sys.stdout):
        self.client, self.force, self.out = client, force, out
        self.progress = progress  # a stream for the progress line, or None
        self.files = self.records = self.imported = self.skipped = self.empty = 0
        self.added = self.present = self.cut = self.refused = 0
        self.bad = []
        self._shown = 0.0
        self._titled = set()

    def run(self, paths):
        files = list(transcript_files(paths))
        # Which sessions have a title already (one listing, instead of a request per session).
        self._titled = {item["tag"] for item in self.client.request("GET", "/api/sessions")["items"]
                        if item["title"] and item["tag"]}
        for number, path in enumerate(files, 1):
            self.files = number
            self._show(number, len(files))
            self.import_file(path)
        self._show(len(files), len(files), force=True)
        if self.progress is not None:
            self.progress.write("\n")
        return self

    def _show(self, number, count, force=False):
        now = time.monotonic()
        if self.progress is None or (not force and now - self._shown < PROGRESS_EVERY):
            return
        self._shown = now
        self.progress.write(f"\rfiles {number:,}/{count:,}  records {self.records:,}  messages added "
                            f"{self.added:,}  sessions {self.imported:,} imported, {self.skipped:,} skipped ")
        self.progress.flush()

    def import_file(self, path):
        session_id = os.path.splitext(os.path.basename(path))[0]
        state = {"path": path, "tag": CLAUDE_TAG + session_id, "session": None, "skip": False, "ours": False,
                 "cwd": None, "last_seq": 0}
        usage = TranscriptUsage(session_id)
        batch, merging, size, summary = [], {}, 0, None
        for number, record in _transcript_lines(path, self.bad):
            self.records += 1
            if self.progress is not None and self.records % 5000 == 0:
                self._show(self.files, self.files)
            kind = record.get("type")
            if kind == "summary":
                if isinstance(record.get("summary"), str) and record["summary"].strip():
                    summary = record["summary"]
                continue
            if kind not in CLAUDE_MESSAGE_TYPES:
                continue
            usage.add(record)
            if record.get("isSidechain") or record.get("isMeta") or state["skip"]:
                continue
            state["cwd"] = state["cwd"] or record.get("cwd")
            message = record.get("message")
            content = record.get("content") if kind == "system" else (
                message.get("content") if isinstance(message, dict) else None)
            if content is None or not isinstance(record.get("uuid"), str):
                continue  # nothing said (a system record of Claude Code's own bookkeeping)
            message_id = message.get("id") if kind == "assistant" and isinstance(message, dict) else None
            if message_id is not None and message_id in merging:
                # Another content block of the same API message: one message in Switchboard.
                item = merging[message_id]
                if record["uuid"] not in item["lines"]:  # a line written twice is said once
                    item["lines"].add(record["uuid"])
                    item["content"] = _blocks(item["content"]) + _blocks(content)
                continue
            item = {"content": content, "localId": record["uuid"][:256], "role": kind,
                    "createdAt": _epoch_ms(record.get("timestamp")), "line": number, "lines": {record["uuid"]}}
            if message_id is not None:
                merging[message_id] = item
            batch.append(item)
            size += len(content) if isinstance(content, str) else len(json.dumps(content))
            if len(batch) >= BATCH or size >= MAX_BATCH_BYTES:
                self._send(state, batch)
                batch, merging, size = [], {}, 0
        if batch:
            self._send(state, batch)
        usage.add_subagents(path, self.bad)
        if state["session"] is None:
            if not any(True for _ in usage.reports()):
                self.empty += 1
                return
            self._open(state)
        if state["skip"]:
            self.skipped += 1
        else:
            self.imported += 1
            if state["ours"] and state["active"]:  # history, not a live agent: shown inactive
                self.client.request("POST", f"/v1/sessions/{state['session']}/end", {})
            if summary and state["tag"] not in self._titled:
                title = " ".join(summary.split())[:TITLE_CHARS].strip()
                self.client.request("PATCH", f"/api/sessions/{state['session']}", {"title": title})
                self._titled.add(state["tag"])
        _report_usage(self.client, state["session"], usage)

    def _open(self, state):
        """Create or load the session; an existing one with messages this importer did not write (the
        hooks mirrored it live) is skipped unless --force."""
        metadata = {"agent": "claude-code", "cwd": state["cwd"], "transcriptPath": os.path.abspath(state["path"]),
                    "imported": True}
        answer = self.client.request("POST", "/v1/sessions", {"tag": state["tag"], "metadata": json.dumps(metadata)})
        session = answer["session"]
        state["session"], state["last_seq"], state["active"] = session["id"], session["seq"], session["active"]
        try:
            # Made by an import (this one or an earlier one, which this one then completes).
            state["ours"] = json.loads(session["metadata"]).get("imported") is True
        except (ValueError, AttributeError):
            state["ours"] = False
        state["skip"] = bool(session["seq"]) and not state["ours"] and not self.force

    def _send(self, state, batch):
        if state["session"] is None:
            self._open(state)
        if state["skip"]:
            return
        messages = []
        for item in batch:
            content, cut = _fits(item["content"])
            self.cut += cut
            message = {"content": content, "localId": item["localId"], "role": item["role"]}
            if item["createdAt"] is not None:
                message["createdAt"] = item["createdAt"]
            messages.append(message)
        path = f"/v3/sessions/{state['session']}/messages"
        try:
            self._count(state, self.client.request("POST", path, {"messages": messages})["messages"])
        except SwitchboardError as e:
            if e.status != 400:
                raise
            for item, message in zip(batch, messages):  # find the one the server refuses, keep the others
                try:
                    self._count(state, self.client.request("POST", path, {"messages": [message]})["messages"])
                except SwitchboardError as e:
                    if e.status != 400:
                        raise
                    self.refused += 1
                    self.bad.append(f"{state['path']}:{item['line']}")

    def _count(self, state, rows):
        for row in rows:
            if row["seq"] > state["last_seq"]:
                self.added += 1
                state["last_seq"] = row["seq"]
            else:
                self.present += 1

    def summary(self):
        lines = [f"{self.imported:,} session(s) imported ({self.added:,} messages added, {self.present:,} already "
                 f"there), {self.skipped:,} skipped (already mirrored live: --force imports them too), "
                 f"{self.empty:,} transcript(s) with nothing to import; {self.records:,} records read in "
                 f"{self.files:,} file(s), {len(self.bad):,} malformed line(s)"]
        if self.cut:
            lines.append(f"{self.cut:,} message(s) over {MAX_CONTENT_BYTES:,} bytes were cut")
        lines += [f"  malformed: {where}" for where in self.bad[:SHOWN_BAD_LINES]]
        if len(self.bad) > SHOWN_BAD_LINES:
            lines.append(f"  ... and {len(self.bad) - SHOWN_BAD_LINES:,} more")
        return "\n".join(lines)


def _blocks(content):
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def report_usage_from_hook(client, hook):
    """The Stop hook's input (Claude Code's JSON): report its session's usage from its transcript, read
    here on the agent's machine (the server never opens a path a client names)."""
    session_id, path = hook.get("session_id"), hook.get("transcript_path")
    if not isinstance(session_id, str) or not session_id or not isinstance(path, str) or not os.path.isfile(path):
        raise ValueError("the hook input names no session_id or no readable transcript_path")
    usage = transcript_usage(path, session_id)
    metadata = {"agent": "claude-code", "cwd": hook.get("cwd"), "transcriptPath": path}
    session = client.request("POST", "/v1/sessions", {"tag": CLAUDE_TAG + session_id,
                                                      "metadata": json.dumps(metadata)})["session"]
    _report_usage(client, session["id"], usage)
    return usage


def _default_title(command):
    # The program by its name, as the tag names it: a full interpreter path would fill the list's row.
    return shlex.join([os.path.basename(command[0]) or command[0], *command[1:]])


def _default_tag(command):
    started = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{socket.gethostname()}:{os.path.basename(command[0])[:100]}:{started}:{os.getpid()}"


RUN_HELP = """\
Run CMD and mirror it into a Switchboard session, live:
  - each line CMD prints becomes a message (no role; content {"type": "output", "stream": "stdout" or
    "stderr", "text": the line without its newline}), sent in batches of up to 100 lines or every 200 ms;
    a line over 16,384 characters is sent as several messages, and text without a newline (a prompt)
    once CMD has been quiet for 200 ms. A line redrawn with carriage returns (a progress bar) shows
    live: its current state goes every second (content "progress": true), the line whole when it ends.
    CMD's output still shows here too.
  - what a person sends to the session in the browser (role "user") is written to CMD's stdin, a line
    each; CMD gets no other input (and PYTHONUNBUFFERED=1, so Python output is not held back).
  - colours: CMD writes into a pipe, where most programs stop colouring. Run from a terminal, the
    wrapper tells CMD to colour anyway (FORCE_COLOR=1, CLICOLOR_FORCE=1, PY_COLORS=1), as it would
    have in that terminal; the browser shows the colours too, and search ignores them. --color always
    or never decides instead (never sets NO_COLOR=1); a colour setting already in the environment
    stands under auto.
  - heartbeats every 5 s keep the session shown as active ("thinking" while CMD prints).
  - when CMD ends, its exit code becomes a system message and the session is ended. The wrapper exits
    with CMD's exit code (128+N when a signal N killed it).
  - Ctrl-C (SIGINT), SIGTERM, SIGHUP and SIGQUIT are passed on to CMD's process group.
  - while the server is unreachable (or not started yet) CMD runs on and its lines wait in a buffer of
    up to --buffer lines, sent when the server is back: a restart loses and duplicates nothing. Lines a
    full buffer drops are counted, reported here and in the session.

The session: the one tagged --tag (created, or continued when it exists); by default a new one per run,
tagged HOST:COMMAND:START-TIME:PID. Its title is --title, else the command line (the program by its
name, without its directory).

example:
  export SWITCHBOARD_URL=http://127.0.0.1:8000 SWITCHBOARD_TOKEN=sb_...
  python client.py run -- ping -c 3 127.0.0.1
"""


IMPORT_HELP = """\
Import Claude Code's transcripts (default: $CLAUDE_CONFIG_DIR/projects, else ~/.claude/projects) into
Switchboard, over the agent API, so browsers watching see the sessions appear:
  - every transcript <sessionId>.jsonl becomes the session tagged claude:<sessionId>, the one Claude
    Code's hooks fill live. Its user, assistant and system records become messages: role = the record's
    type, content = its message.content (text or content blocks, as written), created at its timestamp,
    localId = its uuid, so running the import again adds nothing. Assistant lines of one API message
    (one line per content block, sharing message.id) are one message. Skipped: sidechains (subagents),
    isMeta records and Claude Code's own bookkeeping (summaries, snapshots, queue operations, ...). The
    transcript's last summary becomes the title of a session that has none.
  - a session that already has messages this import did not write (the hooks mirrored it live) is
    skipped; --force imports into it anyway: every record not already there (by uuid) is appended after
    what the hooks stored, so the session then holds both.
  - token usage is reported for every session, imported or skipped: per day and model, each API
    message counted once (subagents included), priced by the server.
  - a line that is not JSON (a cut-off last line) is counted and named (file:line), never fatal; bytes
    that are not UTF-8 become U+FFFD. A progress line on a terminal, a summary at the end.

example:
  export SWITCHBOARD_URL=http://127.0.0.1:8000 SWITCHBOARD_TOKEN=sb_...
  python client.py import-claude
"""

REPORT_USAGE_HELP = """\
Report a Claude Code session's token usage: reads the Stop hook's input (JSON) on stdin, reads the
transcript it names here, on this machine, and reports the session's usage by day and model (each
report replaces the previous one of its day and model). Meant as a `command` hook on Stop and
SessionEnd (any hook input with session_id and transcript_path will do): `python app.py claude-settings
--with-usage` adds it. Never fails the hook: problems go to stderr and
the exit code is 0.
"""


def _connection_options(parser):
    parser.add_argument("--url", default=os.environ.get("SWITCHBOARD_URL"),
                        help="the server, e.g. http://127.0.0.1:8000 (default: $SWITCHBOARD_URL)")
    parser.add_argument("--token", default=os.environ.get("SWITCHBOARD_TOKEN"),
                        help="an API token, sb_... (default: $SWITCHBOARD_TOKEN)")


def _client(parser, args, retry_for):
    if not args.url or not args.token:
        parser.error("--url and --token (or SWITCHBOARD_URL and SWITCHBOARD_TOKEN) are required")
    try:
        return Switchboard(args.url, args.token, retry_for=retry_for)
    except ValueError as e:
        parser.error(str(e))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python client.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Switchboard's client: mirror any command into a Switchboard session, import Claude Code's "
                    "history, or `import client` in Python (Switchboard, Session: send, flush, alive, end, usage, "
                    "inbox).",
        epilog="`python client.py COMMAND --help` explains each command; the module's docstring the library.")
    commands = parser.add_subparsers(dest="name", metavar="COMMAND")
    run = commands.add_parser("run", help="run a command and mirror it into a session",
                              usage="python client.py run [--url URL] [--token TOKEN] [--tag TAG] [--title TITLE] "
                                    "[--color auto|always|never] -- CMD [ARGS...]",
                              description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _connection_options(run)
    run.add_argument("--tag", help="the session's tag: runs with the same tag share one session")
    run.add_argument("--title", help="the session's title (default: the command line, its program by name)")
    run.add_argument("--buffer", type=int, default=1_000_000, metavar="LINES",
                     help="lines kept while the server is away or behind (default: 1000000, and at most 256 MiB)")
    run.add_argument("--drain", type=float, default=60.0, metavar="SECONDS",
                     help="after CMD ends, how long to keep trying to deliver what is left (default: 60)")
    run.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                     help="tell CMD to colour its output or not (FORCE_COLOR, CLICOLOR_FORCE, PY_COLORS; NO_COLOR); "
                          "auto (the default): always when this wrapper's output is a terminal and the "
                          "environment sets none of them")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    importer = commands.add_parser("import-claude", help="import Claude Code's transcripts and their usage",
                                   description=IMPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _connection_options(importer)
    importer.add_argument("paths", nargs="*", metavar="PATH",
                          help="transcript files or directories (default: Claude Code's projects directory)")
    importer.add_argument("--force", action="store_true",
                          help="import into sessions the hooks already filled too (nothing is stored twice)")
    reporter = commands.add_parser("report-usage", help="report a Claude Code session's usage (a hook command)",
                                   description=REPORT_USAGE_HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _connection_options(reporter)
    args = parser.parse_args(argv)
    if args.name is None:
        parser.print_help()
        return 2
    if args.name == "import-claude":
        return _import_claude(importer, args)
    if args.name == "report-usage":
        return _report_usage_command(reporter, args)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        run.error("give the command to run after --")
    client = _client(run, args, retry_for=None)
    if os.name != "posix":
        run.error("the wrapper needs a Unix-like system (Linux, macOS); the library works anywhere")
    metadata = {"agent": "client.py", "host": socket.gethostname(), "cwd": os.getcwd(), "command": command}
    session = client.session(args.tag or _default_tag(command), args.title or _default_title(command), metadata,
                             connect=False, max_buffer=max(1, args.buffer))
    return _Wrapper(session, command, args.drain, _command_env(args.color, sys.stdout.isatty())).run()


def _import_claude(parser, args):
    paths = args.paths or [claude_projects_dir()]
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:
        parser.error(f"no such file or directory: {missing[0]}")
    client = _client(parser, args, retry_for=300.0)
    importer = ClaudeImporter(client, force=args.force, progress=sys.stderr if sys.stderr.isatty() else None)
    try:
        importer.run(paths)
    except SwitchboardError as e:
        print(importer.summary(), flush=True)
        print(f"switchboard: import stopped: {e}", file=sys.stderr)
        return 1
    print(importer.summary())
    return 0


def _report_usage_command(parser, args):
    try:
        client = _client(parser, args, retry_for=10.0)
        hook = json.loads(sys.stdin.buffer.read().decode("utf-8", "replace"))
        if not isinstance(hook, dict):
            raise ValueError("the hook input is not a JSON object")
        report_usage_from_hook(client, hook)
    except (ValueError, OSError, SwitchboardError) as e:
        print(f"switchboard report-usage: {e}", file=sys.stderr)
    except SystemExit as e:  # a usage error: said on stderr by argparse; the hook still succeeds
        print(f"switchboard report-usage: exit {e.code}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
