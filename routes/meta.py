"""Operational routes: the health check (no auth) and the OpenAPI document."""
from flask import Blueprint, current_app

import schemas
from models import db, storage
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


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document, generated from the schemas the views load and dump."""
    authenticate()
    return current_app.extensions["openapi"]
