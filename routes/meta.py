"""Operational routes: the health check (no auth) and the OpenAPI document."""
from flask import Blueprint, current_app

import schemas
from models import db
from routes import authenticate, endpoint

bp = Blueprint("meta", __name__)


@bp.get("/health")
@endpoint(responses={200: schemas.Health}, errors=())
def health():
    """200 once the database answers."""
    db.execute_sql("SELECT 1")
    return schemas.health.dump({"status": "ok"})


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document, generated from the schemas the views load and dump."""
    authenticate()
    return current_app.extensions["openapi"]
