"""The browser UI's page: `/` renders templates/index.html with a Content-Security-Policy that allows
only this origin (plus its ws:/wss: twin, which 'self' does not cover in every browser).

No authentication here: the page holds no data; its scripts call the API with the token the person
gives them. The scripts and styles are served by Flask's own static route (./static, no auth).
"""
import re

from flask import Blueprint, make_response, render_template, request

bp = Blueprint("ui", __name__)

# A Host header is only trusted into the policy when it is a plain host[:port]: anything else could
# smuggle extra directives after a ';'.
_PLAIN_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$")


def content_security_policy(host):
    connect = "'self'"
    if _PLAIN_HOST.match(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join([
        "default-src 'self'",
        f"connect-src {connect}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


@bp.get("/")
def index():
    """The single-page UI."""
    response = make_response(render_template("index.html"))
    response.headers["Content-Security-Policy"] = content_security_policy(request.host)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
