"""Webhooks: an account's URLs, the shape each format POSTs, the Standard Webhooks signature, and one
delivery attempt. Runs are queued by notifications.py (in the transaction of the write that caused
the event) and worked by its dispatcher; this module never decides when to send.
"""
import base64
import hashlib
import hmac
import secrets
import time

from peewee import fn
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from events import writer
from models import Session, Statement, Webhook, WebhookRun, db
from schemas import MAX_INT, iso, parse_json, to_json

SECRET_PREFIX = "whsec_"
USER_AGENT = "Switchboard-Webhooks/1"
MAX_RESPONSE_BYTES = 64 << 10  # read of a receiver's answer: enough for its status, never its whole body
RUNS_SHOWN = 100

# What a person reads in an ntfy or Slack notification: a short title, a sentence, ntfy's priority
# and tags (emoji short codes). Titles stay ASCII: they travel in an HTTP header for ntfy.
_TEXT = {
    "request.created": ("Approval requested", "{name} asks for your approval.", "high", "bell"),
    "session.waiting": ("Waiting for you", "{name} is waiting for you.", "high", "hourglass_flowing_sand"),
    "session.ended": ("Session ended", "{name} has ended.", "default", "checkered_flag"),
    "message.created": ("New message", "{name} has a new message.", "low", "speech_balloon"),
}


class WebhookNotFound(LookupError):
    pass


def new_secret():
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def add(account_id, url, events, format):
    """Create a webhook; its `secret` is shown to the person this once and never read back out."""
    webhook = writer.run(account_id, lambda changes: Webhook.create(
        account=account_id, url=url, format=format, events=",".join(dict.fromkeys(events)), secret=new_secret()))
    webhook.last_run = None
    return webhook


def remove(account_id, webhook_id):
    """Delete the account's webhook (any account's: None, the operator's command line) and its runs
    (cascade). `webhook_id` may be any text from a URL."""
    if not (str(webhook_id).isascii() and str(webhook_id).isdigit() and int(webhook_id) <= MAX_INT):
        raise WebhookNotFound(webhook_id)
    query = Webhook.delete().where(Webhook.id == webhook_id)
    if account_id is not None:
        query = query.where(Webhook.account == account_id)
    deleted = writer.run(account_id, lambda changes: query.execute())
    if not deleted:
        raise WebhookNotFound(webhook_id)


def listed(account_id=None):
    """Webhooks (of one account, or all) oldest first, each with `last_run` (its newest run or None)."""
    query = Webhook.select().order_by(Webhook.id)
    if account_id is not None:
        query = query.where(Webhook.account == account_id)
    webhooks = list(query)
    last = last_runs([w.id for w in webhooks]).tuples()
    runs = {run.webhook_id: run for run in WebhookRun.select().where(WebhookRun.id.in_([i for _, i in last]))}
    for webhook in webhooks:
        webhook.last_run = runs.get(webhook.id)
    return webhooks


def last_runs(webhook_ids):
    """The query of (webhook id, id of its newest run) for the webhooks that have runs."""
    return (WebhookRun
            .select(WebhookRun.webhook, fn.MAX(WebhookRun.id).alias("last_id"))
            .where(WebhookRun.webhook.in_(webhook_ids))
            .group_by(WebhookRun.webhook))


def runs_of(session_id):
    """The query of the session's newest runs, newest first."""
    return (WebhookRun
            .select()
            .where(WebhookRun.session == session_id)
            .order_by(WebhookRun.id.desc())
            .limit(RUNS_SHOWN))


# --- one delivery ---------------------------------------------------------------------------------

def sign(secret, message_id, timestamp, body):
    """The Standard Webhooks signature header value: v1,base64(HMAC-SHA256(key, "id.timestamp.body"))."""
    key = base64.b64decode(secret[len(SECRET_PREFIX):])
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def render(format, payload, public_url):
    """(body bytes, headers) that `format` POSTs for the event `payload` (the json format's body)."""
    if format == "json":
        return payload.encode(), {"Content-Type": "application/json"}
    event = parse_json(payload)
    session = event["data"]["session"]
    name = session["title"] or session["tag"] or f"Session {session['id'][:8]}"
    title, sentence, priority, tag = _TEXT[event["type"]]
    text = sentence.format(name=f"“{name}”")
    link = f"{public_url.rstrip('/')}/#session={session['id']}" if public_url else None
    if format == "ntfy":
        headers = {"Content-Type": "text/plain; charset=utf-8", "Title": f"Switchboard: {title}",
                   "Priority": priority, "Tags": tag}
        if link:
            headers["Click"] = link
        return text.encode(), headers
    return to_json({"text": f"*{title}*: {text}" + (f" <{link}|Open>" if link else "")}).encode(), \
        {"Content-Type": "application/json"}


def deliver(run, http, timeout, public_url):
    """POST `run` (a dict: id, url, format, secret, payload) once with `http` (a urllib3 PoolManager);
    (response status, ms, error or None)."""
    body, headers = render(run["format"], run["payload"], public_url)
    timestamp = str(int(time.time()))
    headers.update({
        "User-Agent": USER_AGENT,
        "webhook-id": run["id"],  # the run's id: the same on every retry, so receivers can drop repeats
        "webhook-timestamp": timestamp,
        "webhook-signature": sign(run["secret"], run["id"], timestamp, body),
    })
    started = time.monotonic()
    status, error = None, None
    try:
        response = http.request("POST", run["url"], body=body, headers=headers, timeout=timeout, retries=False,
                                redirect=False, preload_content=False)
        status = response.status
        if len(response.read(MAX_RESPONSE_BYTES + 1)) > MAX_RESPONSE_BYTES:
            response.close()  # not worth reading to the end: this connection is dropped instead
        response.release_conn()
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except NewConnectionError:
        error = "could not connect"
    except TimeoutError:
        error = f"timed out after {timeout:g} s"
    except HTTPError as e:
        error = type(e).__name__
    return status, int((time.monotonic() - started) * 1000), error


def event_payload(event, session_row, extra, at_ms):
    """The event as the `json` format POSTs it (Standard Webhooks' {type, timestamp, data})."""
    session_id, title, tag = session_row
    return to_json({"type": event, "timestamp": iso(at_ms),
                    "data": {"session": {"id": session_id, "title": title, "tag": tag}, **extra}})


# Run by every write that has an event for a webhook: rendered once (Statement), as Peewee's rendering
# of it took longer than the rest of the queueing.
_SESSION_ROW = Statement(lambda session_id: Session.select(Session.id, Session.title, Session.tag)
                         .where(Session.id == session_id), "\0s")


def session_rows(session_ids):
    """{id: (id, title, tag)} for the sessions that exist."""
    rows = (db.execute_sql(*_SESSION_ROW(session_id)).fetchone() for session_id in session_ids)
    return {row[0]: row for row in rows if row is not None}
