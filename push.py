"""Web Push: the server's VAPID key pair (made on first start, kept in the database), the browsers'
subscriptions (each held by the token that made it), and one encrypted send (RFC 8291 aes128gcm with
http-ece, RFC 8292 VAPID with py-vapid: the two libraries pywebpush wraps, without its import of
aiohttp, which added half a second to every start of the server).

What is pushed is a short title, the session's name and its id: the browser shows it as is, and
nothing of a message travels. notifications.py queues and retries the sends.
"""
import base64
import time
from urllib.parse import urlsplit

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from events import writer
from models import PushSubscription, VapidKey, db
from schemas import to_json

TTL_SECONDS = 24 * 3600  # how long the push service keeps a notification for a phone that is off
NAME_CHARS = 60
GONE = (404, 410)  # the push service's answer for a subscription that no longer exists

_TITLES = {"request.created": "Approval requested", "session.waiting": "Waiting for you"}
PUSHED_EVENTS = tuple(_TITLES)  # what needs the person; ended sessions and messages are not pushed

_vapid = None


class SubscriptionNotFound(LookupError):
    pass


def ensure_key():
    """Make the key pair if the database has none yet (concurrent first starts keep one)."""
    global _vapid
    _vapid = None  # read again from this database when first needed
    with db.connection_context():
        if VapidKey.select().exists():
            return
        key = Vapid02()
        key.generate_keys()
        public = key.public_key.public_bytes(serialization.Encoding.X962,
                                             serialization.PublicFormat.UncompressedPoint)
        writer.run(None, lambda changes: (VapidKey
                                          .insert(id=1, private_key=key.private_pem().decode(),
                                                  public_key=base64.urlsafe_b64encode(public).rstrip(b"=").decode())
                                          .on_conflict_ignore()
                                          .execute()))


def public_key():
    return VapidKey.get_by_id(1).public_key


def _signer():
    global _vapid
    if _vapid is None:
        _vapid = Vapid02.from_pem(VapidKey.get_by_id(1).private_key.encode())
    return _vapid


def subscribe(token_id, endpoint, p256dh, auth):
    """Store the browser's subscription under this token; an endpoint seen before moves to it."""
    writer.run(None, lambda changes: (PushSubscription
                                      .insert(token=token_id, endpoint=endpoint, p256dh=p256dh, auth=auth)
                                      .on_conflict(conflict_target=[PushSubscription.endpoint],
                                                   update={PushSubscription.token: token_id,
                                                           PushSubscription.p256dh: p256dh,
                                                           PushSubscription.auth: auth})
                                      .execute()))
    return PushSubscription.get(PushSubscription.endpoint == endpoint)


def unsubscribe(token_id, endpoint):
    deleted = writer.run(None, lambda changes: (PushSubscription
                                                .delete()
                                                .where((PushSubscription.endpoint == endpoint)
                                                       & (PushSubscription.token == token_id))
                                                .execute()))
    if not deleted:
        raise SubscriptionNotFound(endpoint)


def payload(event, session_row):
    """The notification: a title, the session's name (cut short) and where a click leads."""
    session_id, title, tag = session_row
    name = (title or tag or f"Session {session_id[:8]}")[:NAME_CHARS]
    return to_json({"title": _TITLES[event], "body": name, "event": event, "sessionId": session_id,
                    "url": f"/#session={session_id}"})


def _unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encrypt(payload, p256dh, auth):
    """The aes128gcm body (RFC 8291) only the subscribed browser can read: keyed by an ephemeral
    ECDH key of ours, its p256dh key and its auth secret."""
    return http_ece.encrypt(payload.encode(), private_key=ec.generate_private_key(ec.SECP256R1()),
                            dh=_unb64url(p256dh), auth_secret=_unb64url(auth), version="aes128gcm")


def deliver(job, http, timeout, subject):
    """POST `job` (a dict: endpoint, p256dh, auth, payload) encrypted, with a VAPID signature, using
    `http` (a urllib3 PoolManager); (response status, error or None)."""
    parts = urlsplit(job["endpoint"])
    claims = {"sub": subject, "aud": f"{parts.scheme}://{parts.netloc}", "exp": int(time.time()) + 12 * 3600}
    headers = {**_signer().sign(claims), "Content-Encoding": "aes128gcm", "TTL": str(TTL_SECONDS),
               "Urgency": "high", "Content-Type": "application/octet-stream"}
    try:
        response = http.request("POST", job["endpoint"], body=encrypt(job["payload"], job["p256dh"], job["auth"]),
                                headers=headers, timeout=timeout, retries=False, redirect=False)
    except NewConnectionError:
        return None, "could not connect"
    except TimeoutError:
        return None, f"timed out after {timeout:g} s"
    except HTTPError as e:
        return None, type(e).__name__
    return response.status, None if 200 <= response.status < 300 else f"HTTP {response.status}"
