"""GET /openapi.json: behind the token, a valid OpenAPI 3 document, and it describes every agent route
with the request and response schemas the views really load and dump."""
import pytest
from openapi_spec_validator import validate

AGENT_ROUTES = {
    ("get", "/v1/sessions"): (None, None, "SessionListV1"),
    ("post", "/v1/sessions"): ("SessionCreate", None, "SessionEnvelope"),
    ("get", "/v2/sessions/active"): (None, {"limit"}, "SessionList"),
    ("get", "/v2/sessions"): (None, {"cursor", "limit", "changedSince"}, "SessionPage"),
    ("get", "/v1/sessions/{session_id}/messages"): (None, None, "MessageList"),
    ("delete", "/v1/sessions/{session_id}"): (None, None, "Success"),
    ("get", "/v3/sessions/{session_id}/messages"): (None, {"after_seq", "before_seq", "limit", "wait"}, "MessagePage"),
    ("post", "/v3/sessions/{session_id}/messages"): ("MessagesAppend", None, "AppendedList"),
    ("post", "/v1/sessions/{session_id}/metadata"): ("MetadataUpdate", None, "MetadataResult"),
    ("post", "/v1/sessions/{session_id}/agent-state"): ("AgentStateUpdate", None, "AgentStateResult"),
    ("post", "/v1/sessions/{session_id}/alive"): ("Alive", None, "Success"),
    ("post", "/v1/sessions/{session_id}/end"): ("End", None, "Success"),
}


@pytest.fixture
def spec(client, auth):
    r = client.get("/openapi.json", headers=auth)
    assert r.status_code == 200 and r.mimetype == "application/json"
    return r.get_json()


def ref(schema):
    return schema["$ref"].rsplit("/", 1)[-1]


def test_the_document_needs_a_token(client):
    r = client.get("/openapi.json")
    assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"


def test_the_document_is_valid_openapi_3(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.")


def test_every_agent_route_is_described(app, spec):
    served = {(method.lower(), rule.rule.replace("<session_id>", "{session_id}"))
              for rule in app.url_map.iter_rules() if rule.endpoint.startswith("agent_sessions.")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == set(AGENT_ROUTES)
    for (method, path), (body, query, answer) in AGENT_ROUTES.items():
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"bearer": []}] and operation["summary"]
        assert ref(operation["responses"]["200"]["content"]["application/json"]["schema"]) == answer
        assert ref(operation["responses"]["401"]["content"]["application/json"]["schema"]) == "Error"
        if body is None:
            assert "requestBody" not in operation
        else:
            assert ref(operation["requestBody"]["content"]["application/json"]["schema"]) == body
            assert {"400", "413", "415"} <= set(operation["responses"])
        in_query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert in_query == (query or set())
        if "{session_id}" in path:
            assert "404" in operation["responses"]
            assert {"in": "path", "name": "session_id", "required": True, "schema": {"type": "string"}} \
                in operation["parameters"]


def test_schemas_match_what_the_routes_answer(spec, client, auth):
    schemas = spec["components"]["schemas"]
    session = client.post("/v1/sessions", json={"tag": "t", "metadata": "m"}, headers=auth).get_json()["session"]
    assert set(schemas["AgentSessionV1"]["properties"]) == set(session)
    assert set(schemas["AgentSession"]["properties"]) == set(session) - {"lastMessage"}
    client.post(f"/v3/sessions/{session['id']}/messages", json={"messages": [{"content": 1}]}, headers=auth)
    [message] = client.get(f"/v1/sessions/{session['id']}/messages", headers=auth).get_json()["messages"]
    assert set(schemas["AgentMessage"]["properties"]) == set(message)
    assert schemas["SessionCreate"]["required"] == ["metadata", "tag"]
    assert schemas["SessionCreate"]["additionalProperties"] is False  # unknown fields are rejected
    assert schemas["MessagesAppend"]["properties"]["messages"]["minItems"] == 1
    assert schemas["MessagesAppend"]["properties"]["messages"]["maxItems"] == 100
    limit = next(p for p in spec["paths"]["/v3/sessions/{session_id}/messages"]["get"]["parameters"]
                 if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 500, 100)
    assert ref(spec["paths"]["/v1/sessions/{session_id}/metadata"]["post"]["responses"]["409"]["content"]
               ["application/json"]["schema"]) == "MetadataResult"
