"""The browser UI's page: `/` renders templates/index.html with a Content-Security-Policy that allows
only this origin (plus its ws:/wss: twin, which 'self' does not cover in every browser). `/sw.js` (the
service worker, at the root so its scope is the whole page) and `/manifest.webmanifest` make the page
an installable app that receives Web Push.

No authentication here: the page holds no data; its scripts call the API with the token the person
gives them. The scripts and styles are served by Flask's own static route (./static, no auth).
"""
import functools
import re
from pathlib import Path

from flask import Blueprint, current_app, make_response, render_template, request, send_from_directory

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


@functools.cache
def _page_modules(static_folder):
    """The page's own modules, preloaded by the page so the browser fetches them side by side instead
    of one import level after another; not markdown.js, which the page imports after its first paint."""
    return sorted(p.name for p in Path(static_folder, "js").glob("*.js") if p.name != "markdown.js")


@bp.get("/")
def index():
    """The single-page UI."""
    response = make_response(render_template("index.html", modules=_page_modules(current_app.static_folder)))
    response.headers["Content-Security-Policy"] = content_security_policy(request.host)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/sw.js")
def service_worker():
    """The service worker: shows a pushed notification and opens its session on a click."""
    return send_from_directory(current_app.static_folder, "sw.js", mimetype="text/javascript", max_age=0)


@bp.get("/manifest.webmanifest")
def manifest():
    """The web app manifest: the page installs as an app (on a phone's home screen too)."""
    return send_from_directory(current_app.static_folder, "manifest.webmanifest",
                               mimetype="application/manifest+json", max_age=0)
