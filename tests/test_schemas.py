"""The marshmallow fast paths fenced: every schema's dump equals marshmallow's own Schema.dump for
dicts, other mappings and objects (model rows); the list loader equals marshmallow's own load of the
nested schema; and both refuse the schemas they could not serve the same way."""
import json
import random
import types
from collections.abc import Mapping

import pytest
from marshmallow import INCLUDE, Schema, ValidationError, fields, missing, post_load, pre_dump

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


# --- the JSON fast paths: orjson where it gives what the standard json module gives ----------------

def _deep(levels):
    value = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def _random_json(rng, depth=0):
    """A JSON value of the kinds a body holds: floats of every magnitude, integers past 64 bits,
    NaN and Infinity (which json parses), control characters and text past the BMP."""
    kind = rng.randrange(12 if depth < 4 else 8)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 7, 2 ** 53, 2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1, 2 ** 64, -2 ** 63 - 1, 10 ** 30])
    if kind == 2:
        return rng.choice([0.0, -0.0, 1.5, 1e-05, 1e16, 1e22, 5e-324, 1.7976931348623157e308, float("nan"),
                           float("inf"), rng.random() * 10 ** rng.randint(-30, 30)])
    if kind in (3, 4, 5, 6, 7):
        alphabet = "ab é\"\\\n\t\x00\x1f\x7f\u2028\U0001f600.e1"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
    if kind in (8, 9):
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{rng.randrange(9)}": _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def _outcome_of(function, value):
    try:
        return "value", repr(function(value))  # repr: 1 and 1.0 differ, NaN equals NaN
    except Exception as e:
        return "error", type(e)


def _json_encoded(value):
    text = schemas._compact_json(value)
    return text, len(text.encode())


def test_compact_json_writes_what_the_json_module_writes():
    rng = random.Random(11)
    values = [_random_json(rng) for _ in range(3000)]
    values += [_deep(300), _deep(5000), {"a": _deep(254)}, 2 ** 100, [1, 2.5], {"t": float("-inf")}, "", {}]
    for value in values:
        assert _outcome_of(schemas.compact_json, value) == _outcome_of(_json_encoded, value), value


def _json_parsed(raw):
    return schemas._no_lone_surrogates(raw, json.loads(raw))


def test_parse_json_reads_what_the_json_module_reads():
    rng = random.Random(12)
    texts = []
    for _ in range(2000):
        value = _random_json(rng)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)  # NaN, Infinity and big integers too
        texts += [text, text.encode(), text[:-1]]
    numbers = ["1" * 18, "1" * 19, "9223372036854775807", "-9223372036854775808", "-9223372036854775809",
               "18446744073709551615", "18446744073709551616", "1e400", "-1e400", "1e-400", "-0", "0.1e1"]
    texts += numbers + [f'{{"n":{n},"s":"{n}"}}' for n in numbers]
    texts += ['"\\ud800"', '["\\udc00x"]', '"\\ud83d\\ude00"', '"\ud800"', b'"\xed\xa0\x80"', b"\xef\xbb\xbf{}",
              '{"a":1}'.encode("utf-16"), "NaN", "[Infinity]", '{"a":1,"a":2}', "", " ", "[1,]", "{} x", b"\xff"]
    for raw in texts:
        assert _outcome_of(schemas.parse_json, raw) == _outcome_of(_json_parsed, raw), raw


def _random_field_value(rng):
    pool = [missing, None, "", "x", "a" * 257, "t" * 50_001, "user", "robot", "2026-01-02T03:04:05.678Z",
            "2026-13-02", "5", 0, -1, 5, 2 ** 53, 2 ** 64, True, 5.0, 1e-05, float("nan"), [], [1, "two"], {},
            {"k": 1.5}, {"t": [None, {"x": "y"}]}, _deep(101), "é\n\x00"]
    return _random_json(rng) if rng.random() < 0.2 else rng.choice(pool)


@pytest.mark.parametrize("schema,nested,items", LOADS, ids=["append", "import"])
def test_the_list_loader_matches_marshmallow_on_any_item(schema, nested, items):
    """Every field absent, null, of its type or not, valid or not, an unknown field now and then: the
    inline steps load and refuse exactly as marshmallow's own load of the nested schema."""
    rng = random.Random(13)
    keys = [field.data_key or name for name, field in nested().load_fields.items()]
    for _ in range(2000):
        item = {key: value for key in keys if (value := _random_field_value(rng)) is not missing}
        if rng.random() < 0.05:
            item["unknown"] = 1
        body = {"messages": [item]}
        if schema is schemas.import_document_schema:
            body.update(version=1, session={"title": "t"})
        try:
            ours = "loaded", repr(schema.load(body)["messages"])  # repr: 1 and 1.0 differ
        except ValidationError as e:
            ours = "refused", e.messages["messages"]
        try:
            theirs = "loaded", repr(nested(many=True).load([item]))
        except ValidationError as e:
            theirs = "refused", e.messages
        assert ours == theirs, item
