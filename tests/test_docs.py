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


def test_the_repository_cites_only_its_own_files():
    root = Path(__file__).resolve().parent.parent
    tracked = [p for pattern in ("*.py", "*.md", "*.js", "*.html", "*.css", "*.toml", "routes/*.py", "tests/*.py",
                                 "bench/*.py", "docs/*.md", "static/**/*.js", "static/*.js", "templates/*.html")
               for p in root.glob(pattern)]
    offenders = [str(p.relative_to(root)) for p in set(tracked)
                 if re.search(r"DESIGN\.md|DESIGN §|\bthe seed\b|\bseed's\b|shared/seeds", p.read_text())
                 and p.name != "test_docs.py"]
    assert not offenders
