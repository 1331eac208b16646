"""Usage and cost: agents report tokens per session (the happy-server contract's usage report), people
read the sums (the management contract).

The report is priced and summed by domain.report_usage; the summary is a read of the caller's reports.
"""
from flask import Blueprint, g

import domain
import schemas
from models import usage_summary
from routes import ApiError, authenticate, endpoint

bp = Blueprint("usage", __name__)
bp.before_request(authenticate)


@bp.errorhandler(domain.SessionNotFound)
def session_not_found(e):
    return ApiError(404, "Session not found").response()


@bp.post("/v1/sessions/<session_id>/usage")
@endpoint(body=schemas.usage_report_schema, responses={200: schemas.UsageReportResult}, errors=(401, 404))
def report(session_id, body):
    """Report the session's tokens under a key; replaces the previous report of that key."""
    row = domain.report_usage(g.account_id, session_id, body)
    return schemas.usage_report_result.dump({"success": True, **row})


@bp.get("/api/usage")
@endpoint(query=schemas.usage_query, responses={200: schemas.UsageSummary})
def summary(args):
    """The caller's usage between from and to, by day or by session."""
    total, items = usage_summary(g.account_id, args["start"], args["end"], args["group"], args["limit"])
    dumped = (schemas.usage_days if args["group"] == "day" else schemas.usage_sessions).dump(items)
    return schemas.usage_summary.dump({**args, "total": total, "items": dumped})
