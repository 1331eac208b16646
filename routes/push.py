"""Web Push for the page: the server's public key (for pushManager.subscribe), and subscribing and
unsubscribing this browser under the caller's token. The service worker is served by routes/ui.py.
"""
from flask import Blueprint, g

import push
import schemas
from routes import ApiError, authenticate, endpoint

bp = Blueprint("push", __name__)
bp.before_request(authenticate)


@bp.errorhandler(push.SubscriptionNotFound)
def subscription_not_found(e):
    return ApiError(404, "subscription_not_found", "No push subscription with this endpoint for this token.").response()


@bp.get("/api/push/key")
@endpoint(responses={200: schemas.PushKey})
def key():
    """The server's VAPID public key (base64url), the applicationServerKey to subscribe with."""
    return schemas.push_key.dump({"public_key": push.public_key()})


@bp.post("/api/push/subscriptions")
@endpoint(body=schemas.push_subscription_create_schema, responses={201: schemas.PushSubscriptionSchema})
def subscribe(body):
    """Register this browser's push subscription (PushSubscription.toJSON()) under the caller's token."""
    subscription = push.subscribe(g.token_id, body["endpoint"], body["keys"]["p256dh"], body["keys"]["auth"])
    return schemas.push_subscription_schema.dump(subscription), 201


@bp.delete("/api/push/subscriptions")
@endpoint(body=schemas.push_subscription_delete_schema, responses={204: None}, errors=(401, 404))
def unsubscribe(body):
    """Forget this browser's subscription (by its endpoint)."""
    push.unsubscribe(g.token_id, body["endpoint"])
    return "", 204

