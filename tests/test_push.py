"""Web Push: the VAPID key made on first start and kept, subscriptions per token (gone with a revoked
token), what is queued for which event, and real sends by the real server to a stub push service on
127.0.0.1 that checks the VAPID JWT and decrypts the aes128gcm body with the subscription's keys; a
410 removes the subscription. Plus the service worker and the manifest that make the page an app."""
import base64
import json
import os
import struct
import time

import http_ece
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from test_webhooks import account_of, emit, emit_from_outside, start_session, wait_until

import models
from app import create_app
from conftest import assert_refused, database, run_sql
from receiver import Receiver


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """A subscription's keys, as a browser makes them: a P-256 key pair and a 16-byte auth secret."""

    def __init__(self, endpoint):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.endpoint = endpoint

    def subscription(self):
        public = self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                            serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}

    def decrypt(self, body):
        return json.loads(http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth,
                                           version="aes128gcm"))


@pytest.fixture
def push_service():
    server = Receiver()
    yield server
    server.close()


def subscriptions(db):
    return run_sql(db, "SELECT token_id, endpoint FROM push_subscription ORDER BY id")


def jobs(db):
    return [(sid, json.loads(payload)) for sid, payload in
            run_sql(db, "SELECT subscription_id, payload FROM push_job ORDER BY id")]


# --- keys and subscriptions --------------------------------------------------------------------

def test_the_key_pair_is_made_on_first_start_and_kept(tmp_path, client, auth):
    key = client.get("/api/push/key", headers=auth).get_json()["public_key"]
    raw = unb64url(key)
    assert len(raw) == 65 and raw[0] == 4  # an uncompressed P-256 point: pushManager.subscribe's format
    again = create_app({"DB": database(tmp_path / "test.db"), "TESTING": True})
    assert again.test_client().get("/api/push/key", headers=auth).get_json()["public_key"] == key
    assert client.get("/api/push/key").status_code == 401


def test_a_browser_subscribes_and_unsubscribes_under_its_token(app, client, auth, other_auth):
    browser = Browser("https://push.example.com/send/abc")
    r = client.post("/api/push/subscriptions", json=browser.subscription(), headers=auth)
    assert r.status_code == 201
    assert set(r.get_json()) == {"id", "endpoint", "created_at"} and r.get_json()["endpoint"] == browser.endpoint
    # The same browser again (keys rotated): one subscription, updated
    again = Browser(browser.endpoint)
    assert client.post("/api/push/subscriptions", json=again.subscription(), headers=auth).get_json()["id"] == \
        r.get_json()["id"]
    assert len(subscriptions(app.config["DB"])) == 1
    delete = {"endpoint": browser.endpoint}
    assert_refused(app, client, "DELETE", "/api/push/subscriptions", delete, other_auth, 404,
                   "subscription_not_found", None)
    assert client.delete("/api/push/subscriptions", json=delete, headers=auth).status_code == 204
    assert subscriptions(app.config["DB"]) == []
    assert_refused(app, client, "DELETE", "/api/push/subscriptions", delete, auth, 404, "subscription_not_found", None)


def _bad(**changes):
    subscription = Browser("https://push.example.com/x").subscription()
    for key, value in changes.items():
        if key in ("p256dh", "auth"):
            subscription["keys"][key] = value
        elif value is None:
            del subscription[key]
        else:
            subscription[key] = value
    return subscription


@pytest.mark.parametrize("body, field", [
    (_bad(endpoint="ftp://push.example.com/x"), "endpoint"),
    (_bad(endpoint="https://push.example.com/" + "a" * 2100), "endpoint"),
    (_bad(endpoint=None), "endpoint"),
    (_bad(keys=None), "keys"),
    (_bad(p256dh=b64url(b"\x04" + b"1" * 30)), "keys"),
    (_bad(p256dh=b64url(b"\x04" + b"\x01" * 64)), "keys"),  # 65 bytes, not on the curve
    (_bad(p256dh="not base64url!"), "keys"),
    (_bad(auth=b64url(b"short")), "keys"),
    (_bad(auth=5), "keys"),
    (_bad(extra=1), "extra"),
])
def test_bad_subscriptions_are_refused_and_change_nothing(app, client, auth, body, field):
    assert_refused(app, client, "POST", "/api/push/subscriptions", body, auth, 400, "invalid_request", field)


def test_a_revoked_tokens_subscriptions_go_with_it(app, client, auth):
    client.post("/api/push/subscriptions", json=Browser("https://push.example.com/1").subscription(), headers=auth)
    with models.db.connection_context():
        models.Token.delete().execute()
    assert subscriptions(app.config["DB"]) == []


def test_only_what_needs_the_person_is_pushed_to_every_browser_of_the_account(app, client, auth, other_auth):
    from app import create_token
    with models.db.connection_context():
        second_token = {"Authorization": "Bearer " + create_token(models, name="phone", account="alice")}
    for n, headers in enumerate((auth, second_token, other_auth)):
        client.post("/api/push/subscriptions", json=Browser(f"https://push.example.com/{n}").subscription(),
                    headers=headers)
    sid = client.post("/api/sessions", json={"title": "Deploy the site"}, headers=auth).get_json()["id"]
    client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": "the password is hunter2"},
                headers=auth)
    account = account_of(app.config["DB"], "alice")
    emit(account, sid, {"t": "update-session", "id": sid, "active": False})
    assert jobs(app.config["DB"]) == []  # neither a message nor an ended session is pushed
    emit(account, sid, {"t": "new-request", "request": {"id": "r1", "input": {"command": "rm -rf /tmp/x"}}})
    emit(account, sid, {"t": "update-session", "id": sid, "awaitingMessage": True})
    queued = jobs(app.config["DB"])
    assert [s for s, _ in queued] == [1, 2, 1, 2]  # alice's two browsers, not bob's
    assert queued[0][1] == {"title": "Approval requested", "body": "Deploy the site", "event": "request.created",
                            "sessionId": sid, "url": f"/#session={sid}"}
    assert queued[2][1]["title"] == "Waiting for you"
    assert "hunter2" not in json.dumps(queued) and "rm -rf" not in json.dumps(queued)
    client.delete(f"/api/sessions/{sid}", headers=auth)
    assert jobs(app.config["DB"]) == []  # queued notifications go with their session


# --- sending, by the real server -------------------------------------------------------------------

def vapid_claims(authorization, public_key):
    """Check the VAPID header (RFC 8292): its key is the server's, and the JWT is ES256-signed by it."""
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == public_key
    header, claims, signature = fields["t"].split(".")
    assert json.loads(unb64url(header)) == {"typ": "JWT", "alg": "ES256"}
    raw = unb64url(signature)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public_key))
    key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
               f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if not signed by it
    return json.loads(unb64url(claims))


def test_a_push_is_signed_and_encrypted_for_the_browser_and_a_410_removes_it(make_server, push_service):
    server = make_server({"SWITCHBOARD_VAPID_SUBJECT": "mailto:ops@example.com"})
    browser = Browser(push_service.url + "/push/device-1")
    r = requests.post(server.url + "/api/push/subscriptions", json=browser.subscription(), headers=server.headers)
    assert r.status_code == 201
    public_key = requests.get(server.url + "/api/push/key", headers=server.headers).json()["public_key"]
    sid = start_session(server, tag="build-box")
    requests.post(f"{server.url}/v3/sessions/{sid}/messages", json={"messages": [{"content": "secret stuff"}]},
                  headers=server.headers)
    push_service.scripts["/push/device-1"] = [201, 410]
    emit_from_outside(server, sid, {"t": "new-request", "request": {"id": "r1"}})

    [sent] = push_service.wait_for("/push/device-1", 1)
    claims = vapid_claims(sent["headers"]["Authorization"], public_key)
    assert claims["aud"] == push_service.url and claims["sub"] == "mailto:ops@example.com"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert sent["headers"]["Content-Encoding"] == "aes128gcm" and int(sent["headers"]["TTL"]) > 0
    assert b"build-box" not in sent["body"]  # encrypted
    assert browser.decrypt(sent["body"]) == {"title": "Approval requested", "body": "build-box",
                                             "event": "request.created", "sessionId": sid, "url": f"/#session={sid}"}
    wait_until(lambda: not jobs(server.db_path))  # sent: off the queue

    emit_from_outside(server, sid, {"t": "update-session", "id": sid, "awaitingMessage": True})
    [_, gone] = push_service.wait_for("/push/device-1", 2)
    assert browser.decrypt(gone["body"])["title"] == "Waiting for you"
    wait_until(lambda: subscriptions(server.db_path) == [])
    emit_from_outside(server, sid, {"t": "new-request", "request": {"id": "r2"}})
    time.sleep(1.5)
    assert len(push_service.requests["/push/device-1"]) == 2


def test_a_failed_push_is_retried(make_server, push_service):
    server = make_server({"SWITCHBOARD_WEBHOOK_RETRY_BASE_SECONDS": "0.2"})
    browser = Browser(push_service.url + "/push/flaky")
    requests.post(server.url + "/api/push/subscriptions", json=browser.subscription(), headers=server.headers)
    push_service.scripts["/push/flaky"] = [500, 429]
    sid = start_session(server)
    emit_from_outside(server, sid, {"t": "update-session", "id": sid, "awaitingMessage": True})
    sends = push_service.wait_for("/push/flaky", 3)
    assert [browser.decrypt(s["body"])["sessionId"] for s in sends] == [sid] * 3
    wait_until(lambda: not jobs(server.db_path))
    assert len(subscriptions(server.db_path)) == 1


# --- the installable page ------------------------------------------------------------------------

def test_the_service_worker_is_served_from_the_root(client):
    r = client.get("/sw.js")
    assert r.status_code == 200 and r.mimetype == "text/javascript"
    source = r.get_data(as_text=True)
    for needed in ('addEventListener("push"', "showNotification", 'addEventListener("notificationclick"',
                   "openWindow", "focus()"):
        assert needed in source


def test_the_manifest_makes_the_page_installable(client):
    r = client.get("/manifest.webmanifest")
    assert r.status_code == 200 and r.mimetype == "application/manifest+json"
    manifest = json.loads(r.get_data())
    assert manifest["name"] and manifest["start_url"] == "/" and manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        assert client.get(icon["src"]).status_code == 200
    assert '<link rel="manifest" href="/manifest.webmanifest">' in client.get("/").get_data(as_text=True)


def test_the_manifest_has_png_icons_of_the_sizes_it_states_for_phones(client):
    """Chromium and Android install a page only with PNG icons of 192 and 512 pixels; launchers that
    cut their own shape want a maskable one. Each is served as image/png with the size it claims."""
    icons = json.loads(client.get("/manifest.webmanifest").get_data())["icons"]
    png = [icon for icon in icons if icon["type"] == "image/png"]
    assert {(icon["sizes"], icon["purpose"]) for icon in png} >= {
        ("192x192", "any"), ("512x512", "any"), ("192x192", "maskable"), ("512x512", "maskable")}
    for icon in png:
        r = client.get(icon["src"])
        assert r.status_code == 200 and r.mimetype == "image/png", icon
        data = r.get_data()
        r.close()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", icon
        width, height = struct.unpack(">II", data[16:24])
        assert f"{width}x{height}" == icon["sizes"], icon
    assert 'rel="apple-touch-icon" href="/static/icon-192.png"' in client.get("/").get_data(as_text=True)


def test_in_chromium_the_worker_registers_and_shows_a_pushed_notification(live_server):
    from playwright.sync_api import sync_playwright
    from test_ui_browser import CHROMIUM_ARGS, require_chromium
    require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = chromium.new_context(permissions=["notifications"])
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            cdp = context.new_cdp_session(page)
            registrations = []
            cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
            cdp.send("ServiceWorker.enable")
            page.goto(live_server.url + "/")
            assert page.evaluate("""async () => {
                await navigator.serviceWorker.register("/sw.js");
                const registration = await navigator.serviceWorker.ready;
                return registration.active.scriptURL;
            }""") == live_server.url + "/sw.js"
            wait_until(lambda: any(r["scopeURL"] == live_server.url + "/" for r in registrations), timeout=30)
            registration = next(r for r in registrations if r["scopeURL"] == live_server.url + "/")
            pushed = json.dumps({"title": "Approval requested", "body": "build-box", "sessionId": "01abc",
                                 "url": "/#session=01abc"})

            def push_and_look():
                # Pushed again until it shows (a busy machine may start the worker late): the tag makes
                # a repeat replace the notification, never add one.
                cdp.send("ServiceWorker.deliverPushMessage", {
                    "origin": live_server.url, "registrationId": registration["registrationId"], "data": pushed})
                return page.evaluate("""async () => {
                    await new Promise(resolve => setTimeout(resolve, 200));
                    const registration = await navigator.serviceWorker.ready;
                    return (await registration.getNotifications()).map(n => [n.title, n.body, n.tag, n.data.url]);
                }""")
            shown = wait_until(push_and_look, timeout=30)
            assert shown == [["Approval requested", "build-box", "01abc", "/#session=01abc"]]
            assert errors == []
        finally:
            chromium.close()
