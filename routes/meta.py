"""Operational routes: the health check and `client.py` (no auth), the OpenAPI document, and who the
caller is."""
from pathlib import Path

from flask import Blueprint, current_app, g, send_file

import schemas
from models import Account, Token, db, storage
from routes import ApiError, authenticate, endpoint

bp = Blueprint("meta", __name__)


@bp.get("/health")
@endpoint(responses={200: schemas.Health}, errors=())
def health():
    """200 once the database answers and takes writes; 503 storage_unavailable when it cannot."""
    db.execute_sql("SELECT 1")
    failure = storage.healthy()
    if failure is not None:
        raise ApiError(503, "storage_unavailable", failure.reason, headers={"Retry-After": "30"})
    return schemas.health.dump({"status": "ok"})


CLIENT = Path(__file__).resolve().parent.parent / "client.py"


@bp.get("/client.py")
@endpoint(responses={200: None}, errors=())
def client():
    """client.py, the standard-library client and command wrapper (holds no data: no token needed)."""
    # no-cache: a client fetched long ago is checked against this server's (ETag), not reused blindly.
    response = send_file(CLIENT, mimetype="text/x-python", max_age=0, etag=True, conditional=True)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document, generated from the schemas the views load and dump."""
    authenticate()
    return current_app.extensions["openapi"]


@bp.get("/api/me")
@endpoint(responses={200: schemas.Me})
def me():
    """The caller's account and token names (the browser shows whose sessions it holds)."""
    authenticate()
    token = (Token
             .select(Token.name, Account.name.alias("account"))
             .join(Account)
             .where(Token.id == g.token_id)
             .dicts()
             .get())
    return schemas.me.dump({"account": token["account"], "token_name": token["name"]})
