"""Webhooks of the management contract: list (with each one's last run), add (the secret answered
once), remove, and a session's runs. Delivery itself happens in the background (notifications.py).
"""
from flask import Blueprint, g

import domain
import schemas
import webhooks
from routes import ApiError, authenticate, endpoint, session_not_found

bp = Blueprint("webhooks", __name__)
bp.before_request(authenticate)
bp.register_error_handler(domain.SessionNotFound, session_not_found)


@bp.errorhandler(webhooks.WebhookNotFound)
def webhook_not_found(e):
    return ApiError(404, "webhook_not_found", "No webhook with this id.").response()


@bp.get("/api/webhooks")
@endpoint(responses={200: schemas.WebhookItems})
def index():
    """The caller's webhooks, oldest first, each with its last run (or null); never their secrets."""
    return schemas.webhook_items.dump({"items": webhooks.listed(g.account_id)})


@bp.post("/api/webhooks")
@endpoint(body=schemas.webhook_create_schema, responses={201: schemas.WebhookCreatedSchema})
def create(body):
    """Add a webhook; the answer holds its signing secret, this once."""
    webhook = webhooks.add(g.account_id, body["url"], body["events"], body["format"])
    return schemas.webhook_created_schema.dump(webhook), 201


@bp.delete("/api/webhooks/<webhook_id>")
@endpoint(responses={204: None}, errors=(401, 404))
def delete(webhook_id):
    """Remove a webhook and its runs."""
    webhooks.remove(g.account_id, webhook_id)
    return "", 204


@bp.get("/api/sessions/<session_id>/webhook-runs")
@endpoint(responses={200: schemas.WebhookRunItems}, errors=(401, 404))
def runs(session_id):
    """The session's webhook runs (one per event and webhook, updated by each attempt), newest first."""
    session = domain.find_session(g.account_id, session_id)
    return schemas.webhook_run_items.dump({"items": list(webhooks.runs_of(session.id))})
