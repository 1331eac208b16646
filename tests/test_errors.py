"""Every error code the server sends is in errors.ERRORS, and the README says exactly what the table
says: the codes with their statuses, and every websocket close code."""
import ast
import re

import pytest
import requests

import errors
from conftest import ROOT

README = (ROOT / "README.md").read_text()
SOURCES = [p for p in ROOT.glob("*.py") if p.name != "client.py"] + list((ROOT / "routes").glob("*.py"))


def section(title):
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_readme_error_table_is_the_server_table():
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", section("Errors"), re.M)
    documented = {code: status.strip() for code, status in rows}
    expected = {code: " / ".join(map(str, statuses)) if statuses else "websocket only"
                for code, (statuses, _) in errors.ERRORS.items()}
    assert documented == expected
    for code in errors.CONTRACT_ERRORS:
        assert f"`{' '.join(code.split())}`" in " ".join(section("Errors").split())


def test_every_close_code_is_documented_with_the_websocket():
    websocket = section("Real time")
    for code in errors.CLOSE_CODES:
        assert re.search(rf"\b{code}\b", websocket), code


def literal_codes():
    """Every code written in the source: ApiError(status, "code"), ClientError("code"), {"error": "code"}."""
    found = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                position = {"ApiError": 1, "ClientError": 0}.get(name)
                if position is not None and len(node.args) > position and isinstance(node.args[position], ast.Constant):
                    found.add(node.args[position].value)
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if (isinstance(key, ast.Constant) and key.value == "error" and isinstance(value, ast.Constant)
                            and isinstance(value.value, str)):
                        found.add(value.value)
    return found


def test_every_code_in_the_source_is_in_the_table():
    codes = literal_codes()
    assert {"invalid_json", "session_not_found", "unknown_event", "request_not_pending"} <= codes  # the scan sees them
    assert codes <= set(errors.ERRORS) | set(errors.CONTRACT_ERRORS)


def test_an_error_code_missing_from_the_table_is_refused_at_once():
    with pytest.raises(KeyError):
        errors.ApiError(400, "something_new")
    with pytest.raises(AssertionError):
        errors.ApiError(404, "invalid_json")


@pytest.mark.parametrize("messages, expected", [
    ({"title": ["Too long."]}, "title: Too long."),
    ({"messages": {"0": {"content": ["Bad."]}}}, "message 1: content: Bad."),
    ({"messages": {"17": {"role": ["Bad."]}}}, "message 18: role: Bad."),
    ({"messages": ["Length must be between 1 and 100."]}, "messages: Length must be between 1 and 100."),
    (["Invalid input type."], "_schema: Invalid input type."),
])
def test_validation_messages_name_the_first_bad_field_and_count_messages_from_1(messages, expected):
    assert errors.validation_message(messages)[1] == expected


def test_a_body_over_the_limit_is_payload_too_large_naming_the_limit(make_server):
    server = make_server({"SWITCHBOARD_MAX_BODY_BYTES": "1000"})
    r = requests.post(server.url + "/v1/sessions", data="x" * 2000, headers={**server.headers,
                      "Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 413
    assert r.json() == {"error": "payload_too_large",
                        "message": "The body is larger than the limit of 1,000 bytes (SWITCHBOARD_MAX_BODY_BYTES)."}
