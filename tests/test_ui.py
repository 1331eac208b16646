"""The UI as files and headers (no browser): the page and its assets are served without a token, the
Content-Security-Policy allows only this origin, and nothing in the UI loads from another host or
writes untrusted data as HTML, except Markdown through the one sanitizing function. The vendored
libraries are the files their README lists. The browser itself is exercised in test_ui_browser.py
and test_ui_reading.py."""
import hashlib
import re
from pathlib import Path

import pytest

import models

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static"
VENDOR = STATIC / "vendor"
OURS = [p for p in [*STATIC.rglob("*.js"), *STATIC.rglob("*.css")] if VENDOR not in p.parents]
UI_SOURCES = [ROOT / "templates" / "index.html", *OURS]


def directives(policy):
    return {name: rest.split() for name, _, rest in (part.strip().partition(" ") for part in policy.split(";"))}


def test_page_is_served_without_a_token_with_a_self_only_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", "ws://localhost", "wss://localhost"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "script-src" not in policy and "style-src" not in policy  # both fall back to default-src 'self'
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_websocket_source_follows_the_host_and_port_asked_for(client):
    policy = directives(client.get("/", headers={"Host": "example.test:8123"}).headers["Content-Security-Policy"])
    assert policy["connect-src"] == ["'self'", "ws://example.test:8123", "wss://example.test:8123"]


@pytest.mark.parametrize("host", ["evil.test; script-src *", "a b", "x'y"])
def test_a_strange_host_header_cannot_add_to_the_policy(client, host):
    policy = directives(client.get("/", headers={"Host": host}).headers["Content-Security-Policy"])
    assert policy["connect-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert "script-src" not in policy


def test_every_asset_the_page_references_is_served_with_its_type(client):
    html = client.get("/").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert {a.rsplit(".", 1)[-1] for a in assets} == {"svg", "png", "css", "js"}
    modules = [p.relative_to(ROOT).as_posix() for p in STATIC.rglob("*.js")]
    for path in assets + ["/" + m for m in modules]:
        response = client.get(path)
        assert response.status_code == 200, path
        expected = {"js": "javascript", "css": "text/css", "svg": "image/svg+xml", "png": "image/png"}[path.rsplit(".", 1)[-1]]
        assert expected in response.mimetype, (path, response.mimetype)
        response.close()


def test_every_module_import_resolves_to_a_file():
    for module in OURS:
        for target in re.findall(r'from "(\.\.?/[^"]+)"', module.read_text()):
            assert (module.parent / target).is_file(), (module, target)


def test_vendored_files_are_the_ones_their_readme_lists():
    listed = dict(line.split()[::-1] for line in re.findall(r"^[0-9a-f]{64}  \S+$", (VENDOR / "README.md").read_text(), re.M))
    present = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.suffix in (".js", ".css")}
    assert present == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_nothing_is_loaded_from_another_host_and_no_inline_code():
    remote = r"""["'(]\s*(https?:)?//"""  # a quoted or url()-wrapped absolute or protocol-relative URL
    for path in UI_SOURCES:
        text = path.read_text().replace('"http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
        assert not re.search(remote, text), path
        assert "@import" not in text, path
    html = (ROOT / "templates" / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # every script is a file (CSP forbids inline)
    assert not re.search(r"\sstyle=|\son[a-z]+=", html)  # no inline styles or handlers either


SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "createContextualFragment",
         "DOMParser", "srcdoc", "setHTML", "parseHTMLUnsafe")


def test_untrusted_data_never_reaches_the_page_as_html():
    for path in OURS:
        text = path.read_text()
        for sink in SINKS:
            assert sink not in text, (path, sink)


def test_the_page_drops_exactly_the_escape_sequences_search_leaves_out():
    """terminal.js's expression is models._ESCAPES_PATTERN with two groups captured (a CSI's parameters
    and final byte), then the carriage return: a line reads in the page as search reads it."""
    [control] = re.findall(r"^const CONTROL = /(.*)/g;$", (STATIC / "js" / "terminal.js").read_text(), re.M)
    assert control.replace("([0-?]*)", "[0-?]*").replace("([@-~])", "[@-~]") == models._ESCAPES_PATTERN + "|\\r"


def test_markdown_html_reaches_the_page_through_one_sanitizing_function():
    """marked's HTML string becomes nodes in one place: markdown.js's sanitize(), DOMPurify with
    RETURN_DOM_FRAGMENT; nothing else imports marked or DOMPurify."""
    importers = {p.name for p in OURS if "vendor/" in p.read_text()}
    assert importers == {"markdown.js"}
    text = (STATIC / "js" / "markdown.js").read_text()
    assert re.findall(r"DOMPurify\.sanitize\(", text) == ["DOMPurify.sanitize("]
    assert re.search(r"function sanitize\(html\) \{\n  return DOMPurify\.sanitize\(html, \{ \.\.\.PURIFY, RETURN_DOM_FRAGMENT: true \}\);\n\}", text)
    assert text.count("sanitize(marked.parse(") == 1 and text.count("marked.parse(") == 1
    assert "RETURN_DOM_FRAGMENT: false" not in text and "RETURN_TRUSTED_TYPE" not in text


def test_me_names_the_account_and_token_of_the_caller(client, auth, other_auth):
    assert client.get("/api/me", headers=auth).get_json() == {"account": "alice", "token_name": "test"}
    assert client.get("/api/me", headers=other_auth).get_json() == {"account": "bob", "token_name": "test"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sb_not-a-token"}, {"Authorization": "Basic x"}])
def test_me_needs_a_valid_token(client, headers):
    response = client.get("/api/me", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


def test_the_page_preloads_every_module_its_first_paint_imports_and_not_markdown(client):
    """Preloaded, the modules are fetched side by side rather than one import level after another
    (bench/ui.py: the list shows sooner); Markdown's module and libraries wait for the first paint."""
    js = STATIC / "js"
    wanted, todo = set(), ["main.js"]
    while todo:  # the static imports reachable from main.js, main.js included
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += re.findall(r'^import [^;]*? from "\./([\w-]+\.js)";', (js / name).read_text(), re.M)
    page = client.get("/").get_data(as_text=True)
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/js/([\w-]+\.js)">', page))
    assert wanted <= preloaded and "markdown.js" not in preloaded
    assert len(wanted) > 10
