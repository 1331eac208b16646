"""The README documents every route the app serves and every setting it reads."""
import re
from pathlib import Path

from app import DEFAULTS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_route_is_in_the_readme(app):
    documented = set(re.findall(r"`(?:GET|POST|PATCH|PUT|DELETE)[^`]*`", README))
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/static"):
            continue
        path = re.escape(re.sub(r"<(?:\w+:)?\w+>", "PARAM", rule.rule)).replace("PARAM", ":[a-z_]+")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            pattern = re.compile(rf"`{method} {path}([?` ]|\\|$)")
            if not any(pattern.match(d) for d in documented):
                missing.append(f"{method} {path}")
    assert not missing, f"routes missing from README: {missing}"


def test_every_setting_is_in_the_readme():
    missing = [name for name in DEFAULTS if f"SWITCHBOARD_{name}" not in README]
    assert not missing
