"""The marshmallow fast paths fenced: every schema's dump equals marshmallow's own Schema.dump for
dicts, other mappings and objects (model rows); the list loader equals marshmallow's own load of the
nested schema; and both refuse the schemas they could not serve the same way."""
import types
from collections.abc import Mapping

import pytest
from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, pre_dump

import models
import schemas
from schemas import BaseSchema, to_json

INSTANCES = sorted((name, value) for name, value in vars(schemas).items() if isinstance(value, BaseSchema))


class ReadOnly(Mapping):
    """A mapping that is not a dict."""

    def __init__(self, data):
        self._data = data

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


def _value(field, shape):
    """A value of the kind `field` dumps, nested objects in `shape` (dict, ReadOnly or an object)."""
    if isinstance(field, fields.Nested):
        return _object(field.schema, shape)
    if isinstance(field, fields.List):
        return [_value(field.inner, shape), _value(field.inner, shape)]
    if isinstance(field, schemas.JsonText):
        return '{"a":[1,"é",null],"b":{"c":true}}'
    if isinstance(field, schemas.Iso):
        return 1_700_000_000_123
    if isinstance(field, schemas.Base64Bytes):
        return b"\x00key bytes"
    if isinstance(field, fields.Boolean):
        return True
    if isinstance(field, fields.Integer):
        return 42
    if isinstance(field, fields.Float):
        return 1.2345678
    if isinstance(field, fields.String):
        return "text"
    if isinstance(field, (fields.Dict, fields.Raw)):
        return {"k": ["v", 1]}
    raise AssertionError(f"no sample value for {field!r}: extend _value")


def _attributes(schema, shape, every=True):
    values = {}
    for i, (name, field) in enumerate(schema.dump_fields.items()):
        if isinstance(field, fields.Function):
            # the schemas' functions read these columns of what they dump
            values.update(events="request.created,session.ended", cost_usd=0.1234567)
        elif not field._CHECK_ATTRIBUTE:  # a constant
            continue
        elif every or i % 2:
            values[field.attribute or name] = _value(field, shape)
    return values


def _object(schema, shape, every=True):
    values = _attributes(schema, shape, every)
    return {"dict": dict, "mapping": ReadOnly, "object": lambda v: types.SimpleNamespace(**v)}[shape](values)


def _outcome(dump):
    try:
        return "dumped", to_json(dump())
    except Exception as e:  # both paths must fail alike where they fail
        return "failed", type(e)


def _reference(monkeypatch, dump):
    """What marshmallow's own Schema.dump gives, for this schema and every schema nested in it."""
    with monkeypatch.context() as patched:
        patched.setattr(BaseSchema, "_serialize", Schema._serialize)
        return _outcome(dump)


@pytest.mark.parametrize("name,schema", INSTANCES, ids=[name for name, _ in INSTANCES])
@pytest.mark.parametrize("shape", ["dict", "mapping", "object"])
@pytest.mark.parametrize("every", [True, False], ids=["every field", "half missing"])
def test_every_schema_dumps_as_marshmallow_does(monkeypatch, name, schema, shape, every):
    if schema.many:
        obj = [_object(schema, shape, every), _object(schema, shape, every)]
    else:
        obj = _object(schema, shape, every)
    fast = _outcome(lambda: schema.dump(obj))
    assert fast == _reference(monkeypatch, lambda: schema.dump(obj))
    if every and not _reads_by_function(schema):  # the functions read one shape or the other
        assert fast[0] == "dumped"


def _reads_by_function(schema):
    for field in schema.dump_fields.values():
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Function) or (isinstance(inner, fields.Nested) and _reads_by_function(inner.schema)):
            return True
    return False


def test_values_that_need_converting_dump_as_marshmallow_does(monkeypatch):
    """What the skipped conversions would change goes through them: a bool where an int is declared,
    an int where a string is, None, a number where a bool is."""
    class Odd(BaseSchema):
        s = fields.String()
        i = fields.Integer()
        b = fields.Boolean()
        n = fields.String(allow_none=True)
        q = fields.Integer(as_string=True)

    for row in ({"s": 5, "i": True, "b": 1, "n": None, "q": 7}, {"s": b"bytes", "i": 2.0, "b": "yes", "q": 7}):
        assert _outcome(lambda: Odd().dump(row)) == _reference(monkeypatch, lambda: Odd().dump(row))
    assert Odd().dump({"s": 5, "i": True, "b": 1, "q": 7}) == {"s": "5", "i": 1, "b": True, "q": "7"}


def test_model_rows_dump_as_marshmallow_does(app, client, auth, monkeypatch):
    sid = client.post("/api/sessions", json={"title": "rows"}, headers=auth).get_json()["id"]
    client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": "hi", "metadata": {"k": 1}},
                headers=auth)
    with models.db.connection_context():
        session = models.Session.get_by_id(sid)
        message = models.Message.get(models.Message.session == sid)
        cases = [(schemas.session_schema, session), (schemas.event_session_schema, session),
                 (schemas.session_envelope, {"session": session}), (schemas.message_schema, message),
                 (schemas.agent_message_schema, message), (schemas.appended_message_schema, message),
                 (schemas.messages_schema, [message, message])]
        for schema, row in cases:
            fast = _outcome(lambda: schema.dump(row))
            assert fast[0] == "dumped" and fast == _reference(monkeypatch, lambda: schema.dump(row)), schema


def test_a_dict_missing_a_key_reads_the_attribute_of_that_name_as_marshmallow_does(monkeypatch):
    class Keys(BaseSchema):
        keys = fields.Raw()
        title = fields.String()

    row = {"title": "t"}  # `keys` is then the dict's own method, in both paths
    assert _outcome(lambda: Keys().dump(row)) == _reference(monkeypatch, lambda: Keys().dump(row))


def test_the_dump_fast_path_refuses_what_it_does_not_serve():
    class Hooked(BaseSchema):
        title = fields.String()

        @pre_dump
        def change(self, data, **kwargs):
            return data

    class Dotted(BaseSchema):
        title = fields.String(attribute="session.title")

    class Getter(BaseSchema):
        title = fields.String()

        def get_attribute(self, obj, attr, default):
            return "other"

    for schema in (Hooked, Dotted, Getter):
        with pytest.raises(TypeError, match="fast path"):
            schema()


LOADS = [
    (schemas.messages_append_schema, schemas.NewMessageSchema, [
        {"content": {"type": "output", "stream": "stdout", "text": "a line"}, "localId": "l-1"},
        {"content": "plain", "role": "user", "createdAt": 1_700_000_000_000},
        {"content": [1, "two", {"three": None}], "localId": None, "role": None},
    ]),
    (schemas.import_document_schema, schemas.ImportedMessageSchema, [
        {"role": "user", "content": "hi", "created_at": "2026-01-02T03:04:05.678Z", "seq": 1, "local_id": "x"},
        {"role": "assistant", "content": "there", "metadata": {"k": [1]}},
        {"role": None, "content": {"any": "json"}, "created_at": None},
    ]),
]


@pytest.mark.parametrize("schema,nested,items", LOADS, ids=["append", "import"])
def test_the_list_loader_loads_as_marshmallow_does(schema, nested, items):
    if schema is schemas.import_document_schema:
        loaded = schema.load({"version": 1, "session": {"title": "t"}, "messages": items})
    else:
        loaded = schema.load({"messages": items})
    assert loaded["messages"] == nested(many=True).load(items)


@pytest.mark.parametrize("schema,nested,items", LOADS, ids=["append", "import"])
def test_the_list_loader_refuses_what_marshmallow_refuses(schema, nested, items):
    bad = [dict(items[0], content=None), dict(items[0], unknown=1), dict(items[0], role="robot"), "not an object"]
    for item in bad:
        with pytest.raises(ValidationError) as theirs:
            nested(many=True).load([items[1], item])
        body = {"messages": [items[1], item]}
        if schema is schemas.import_document_schema:
            body.update(version=1, session={"title": "t"})
        with pytest.raises(ValidationError) as ours:
            schema.load(body)
        assert ours.value.messages["messages"] == theirs.value.messages, item


def test_the_list_loader_refuses_a_schema_with_load_hooks():
    class Hooked(BaseSchema):
        text = fields.String()

        @post_load
        def change(self, data, **kwargs):
            return data

    class Holder(BaseSchema):
        items = schemas.FirstErrorList(fields.Nested(Hooked))

    with pytest.raises(TypeError, match="post_load"):
        Holder().load({"items": [{"text": "x"}]})

    class Lenient(BaseSchema):
        text = fields.String()

        class Meta:
            unknown = INCLUDE

    class LenientHolder(BaseSchema):
        items = schemas.FirstErrorList(fields.Nested(Lenient))

    with pytest.raises(TypeError, match="unknown"):
        LenientHolder().load({"items": [{"text": "x"}]})
