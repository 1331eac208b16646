"""marshmallow schemas: every request body and query string is loaded here, every response dumped here.

HTTP responses and websocket events share these dumps, so one shape has one definition, and `to_json`
encodes every one of them. Loaded dicts use the model's snake_case names whatever the wire spelling;
nothing here touches the database.
"""
import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from marshmallow import (
    INCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    missing,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from models import pause


class Limits:
    """Size limits, set from the app config (create_app) before any request is served."""
    content_bytes = 1 << 20
    metadata_bytes = 1 << 20
    key_chars = 256
    import_messages = 100_000


limits = Limits()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso(ms):
    # Integer arithmetic, as in parse_iso: through the float ms / 1000, some instants after the year 2109
    # came out a millisecond early, so an export no longer matched what was imported.
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text):
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    # Raises OverflowError past the years 1..9999 in UTC (0001-01-01T00:00+01:00 is in year 0): such an
    # instant would be stored and then fail every dump of it (iso), a 500 on each read of its session.
    parsed = parsed.astimezone(timezone.utc)
    # Integer arithmetic: int(timestamp() * 1000) is a float product and loses a millisecond in
    # about 1 of 160 values, which would shift an imported message's created_at.
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def _max_bytes(limit_name, what):
    def check(value):
        if value is not None and len(value.encode()) > getattr(limits, limit_name):
            raise ValidationError(f"{what} is larger than {getattr(limits, limit_name)} bytes.")
    return check


class MaxChars(validate.Validator):
    """1 to a configurable number of characters, the limit read at each use. apispec documents a
    validator with min, max and equal as minLength and maxLength, so the document shows the limit too."""
    min, equal = 1, None

    def __init__(self, limit_name):
        self.limit_name = limit_name

    @property
    def max(self):
        return getattr(limits, self.limit_name)

    def __call__(self, value):
        if value is not None and not self.min <= len(value) <= self.max:
            raise ValidationError(f"Length must be between {self.min} and {self.max}.")
        return value


# Every integer the API accepts fits JavaScript's safe range (and so SQLite's INTEGER).
MAX_INT = 2 ** 53 - 1


class Int(fields.Integer):
    """An integer within 0..MAX_INT unless a narrower validate= says otherwise."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.insert(0, validate.Range(0, MAX_INT))


class StrictInt(Int):
    """JSON bodies must carry real integers: no "5", no 5.0, no true."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)  # marshmallow's Number refuses true and false itself


class StrictBool(fields.Boolean):
    """JSON true or false only (a truthy set alone would let 1 and 0 in: 1 == True)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Millis(fields.Integer):
    """Epoch milliseconds, as stored."""


class Iso(fields.Field):
    """Epoch milliseconds stored, ISO 8601 UTC on the wire."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else iso(value)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Not a valid ISO 8601 datetime.")
        try:
            return parse_iso(value)
        except (ValueError, OverflowError, OSError):
            raise ValidationError("Not a valid ISO 8601 datetime.") from None


class Base64Bytes(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else base64.b64encode(bytes(value)).decode()

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Not a valid base64 string.")
        try:
            return base64.b64decode(value, validate=True) or None  # "" is no key, as in the happy-server contract
        except (binascii.Error, ValueError):
            raise ValidationError("Not a valid base64 string.") from None


_SURROGATE_ESCAPE = {str: re.compile(r"\\u[dD][89a-fA-F]"), bytes: re.compile(rb"\\u[dD][89a-fA-F]")}


# Digits as "0", everything else as it was: a run of 19 digits is then found by a plain substring search,
# ten times as fast as a regular expression over a whole body.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def parse_json(raw):
    """The value of a JSON body or frame (str or UTF-8 bytes); ValueError if it is not JSON.

    Parsed by orjson, twice as fast, where it gives what the standard json module gives. orjson refuses
    what json reads differently (NaN and Infinity, numbers too large for a float, lone surrogates, a
    byte order mark, UTF-16), and json then reads it; but it reads an integer past 64 bits as a float
    (19 digits can be past -2 ** 63): text with a run of 19 digits anywhere is read by json.

    A lone UTF-16 surrogate escape ("\\ud800") parses in json, but no text can hold it: stored, it
    failed every later encoding (a 500). Only a body with a surrogate escape is searched for one."""
    try:
        encoded = raw.encode() if type(raw) is str else raw
    except UnicodeEncodeError:
        encoded = None
    if encoded is not None and _LONG_NUMBER not in encoded.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(encoded)
        except orjson.JSONDecodeError:
            pass
    return _no_lone_surrogates(raw, json.loads(raw))


_decoder = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
STEP_ITEMS = 2000  # parsed or loaded between two yields: well under a millisecond each


def parse_json_in_steps(raw, max_items):
    """parse_json for a JSON object whose members may be long arrays (an export document): parsed an
    array item at a time, yielding the worker (models.pause) every STEP_ITEMS items, and refusing
    an array longer than `max_items` before the rest of it is parsed.

    json.loads of a 16 MiB body of a million tiny values held the worker for 0.65 s and its result
    took 500 MB; here nothing holds it for long and a refused body costs at most `max_items` values."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    i = _SPACE.match(text).end()
    if text[i:i + 1] != "{":
        return parse_json(raw)  # not an object: nothing long to step through, the schema says what is wrong
    value, i = {}, _SPACE.match(text, i + 1).end()
    closing = text[i:i + 1] == "}"
    if closing:
        i = _SPACE.match(text, i + 1).end()
    while not closing:
        if text[i:i + 1] != '"':
            raise ValueError(f"a member name is expected at {i}")
        key, i = _decoder.raw_decode(text, i)
        i = _SPACE.match(text, i).end()
        if text[i:i + 1] != ":":
            raise ValueError(f"':' is expected at {i}")
        i = _SPACE.match(text, i + 1).end()
        if text[i:i + 1] == "[":
            value[key], i = _array_in_steps(text, i, key, max_items)
        else:
            value[key], i = _decoder.raw_decode(text, i)
        i = _SPACE.match(text, i).end()
        separator, i = text[i:i + 1], _SPACE.match(text, i + 1).end()
        if separator not in (",", "}"):
            raise ValueError(f"',' or '}}' is expected at {i}")
        closing = separator == "}"
    if i != len(text):
        raise ValueError(f"extra data at {i}")
    return _no_lone_surrogates(raw, value)


def _array_in_steps(text, i, key, max_items):
    items, i = [], _SPACE.match(text, i + 1).end()
    if text[i:i + 1] == "]":
        return items, i + 1
    while True:
        item, i = _decoder.raw_decode(text, i)
        items.append(item)
        if len(items) > max_items:
            raise ValidationError({key: [f"At most {max_items} items."]})
        if len(items) % STEP_ITEMS == 0:
            pause()
        i = _SPACE.match(text, i).end()
        separator, i = text[i:i + 1], _SPACE.match(text, i + 1).end()
        if separator == "]":
            return items, i
        if separator != ",":
            raise ValueError(f"',' or ']' is expected at {i}")


def _no_lone_surrogates(raw, value):
    if _SURROGATE_ESCAPE[type(raw)].search(raw):
        pending = [value]
        while pending:
            item = pending.pop()
            if isinstance(item, str):
                item.encode()  # UnicodeEncodeError, a ValueError, for a lone surrogate
            elif isinstance(item, dict):
                pending.extend(item)
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
    return value


def to_json(value):
    """The JSON text of a dump (HTTP bodies, frames, the update log): compact, UTF-8, stored JSON
    text (JsonText) spliced in verbatim. Keys that are not strings (the indexes in an error's
    messages) only where there are some: orjson's option for them costs a third of a message's event."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# One encoder for every value: json.dumps with options builds a new encoder on each call, which costs
# about as much as encoding a short message (a 50,000-message import loads 100,000 values).
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def compact_json(value):
    """(text, UTF-8 size) of a value parsed from JSON: _compact_json's text (ValueError for NaN and
    Infinity, RecursionError past the stack), by orjson where that is the same text, five times as fast.
    The two write strings, integers, true, false and null alike; floats differently (1e-05 against
    0.00001), and orjson refuses integers past 64 bits and deep nesting: a value with a float, or that
    orjson refuses, is encoded by json. A float is looked for only when orjson's text could hold one."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        encoded = None
    if encoded is None or _has_float(value):
        text = _compact_json(value)
        return text, len(text.encode())
    return encoded.decode(), len(encoded)


def _has_float(value):
    # Recursive: orjson encoded the value, so it is at most 255 levels deep.
    kind = type(value)
    if kind is float:
        return True
    if kind is not dict and kind is not list:
        return False
    for item in value.values() if kind is dict else value:
        kind = type(item)
        if kind is float or ((kind is dict or kind is list) and _has_float(item)):
            return True
    return False


# Stored content is later wrapped in event frames and export documents a few levels deep; a cap well
# under the interpreter's recursion limit keeps every one of those encodable.
MAX_JSON_DEPTH = 100


def _too_deep(value):
    if not isinstance(value, (dict, list)):
        return False
    level = [value]
    for _ in range(MAX_JSON_DEPTH + 1):
        level = [child for v in level if isinstance(v, (dict, list))
                 for child in (v.values() if isinstance(v, dict) else v)]
        if not level:
            return False
    return True


class JsonText(fields.Raw):
    """Any JSON value on the wire, its compact JSON text in the database (stored verbatim)."""

    def __init__(self, limit_name="content_bytes", **kwargs):
        self.limit_name = limit_name
        super().__init__(**kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        # The stored text goes out as it is, spliced in by to_json: parsing it only to encode it again
        # cost more than the rest of a message's dump.
        return None if value is None else orjson.Fragment(value)

    def _deserialize(self, value, attr, data, **kwargs):
        # NaN and Infinity parse (Python's json accepts them) but are not JSON: stored, they would make
        # every later read answer invalid JSON. Nesting deeper than the interpreter's stack is refused too.
        try:
            text, size = compact_json(value)
        except RecursionError:
            raise ValidationError(f"Nested deeper than {MAX_JSON_DEPTH} levels.") from None
        except ValueError:
            raise ValidationError("Not a JSON value (NaN, Infinity or nested too deeply).") from None
        # Each level takes two characters of the text at least: a short text (a line of output) needs no walk.
        if len(text) > 2 * MAX_JSON_DEPTH and _too_deep(value):
            raise ValidationError(f"Nested deeper than {MAX_JSON_DEPTH} levels.")
        if size > getattr(limits, self.limit_name):
            raise ValidationError(f"Larger than {getattr(limits, self.limit_name)} bytes serialized.")
        return text


ROLES = ("user", "assistant", "system", "tool")
MAX_TEXT_CHARS = 50_000


class MessageContent(JsonText):
    """Text of 1..50,000 characters in a message with a role (a person's or a chat model's), any JSON
    value in a message without one (an agent's, which its own contract bounds only by size), so that
    every message this server stores can be exported and imported back."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and data.get("role") is not None and not 1 <= len(value) <= MAX_TEXT_CHARS:
            raise ValidationError(f"Text must be 1 to {MAX_TEXT_CHARS} characters.")
        return super()._deserialize(value, attr, data, **kwargs)


class FirstErrorList(fields.List):
    """A list of nested objects loaded in one tight loop that stops at the first bad item.

    An export can hold 100,000 messages, and marshmallow's per-object machinery (Schema.load, its
    hooks, unknown-field handling and error bookkeeping) costs more than writing them to SQLite. The
    loop loads each field as its Field.deserialize does (conversion and validators), so the rules stay
    declared once, on the nested schema; that schema may therefore have no load hooks, no schema
    validators and no `unknown` but RAISE (checked here). Unknown keys are rejected here.

    Field.deserialize's own steps are taken inline where they are plain (_load_plan): a missing value's
    default, an allowed null, a value its conversion would return as it is, validators only where there
    are some. A batch of 100 lines of output is a hundred objects of four fields each, and the calls
    deserialize makes around the conversion cost as much as the conversion itself.
    tests/test_schemas.py compares the results and errors with marshmallow's own load.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise self.make_error("invalid")
        schema = self.inner.schema
        hooks = [tag for tag, found in schema._hooks.items() if found and tag not in ("pre_dump", "post_dump")]
        if hooks or schema.unknown != RAISE:
            raise TypeError(f"FirstErrorList loads {type(schema).__name__} field by field: it cannot run {hooks} "
                            f"and refuses unknown fields")
        declared = [(field.data_key or name, field.attribute or name, field, _load_plan(field))
                    for name, field in schema.load_fields.items()]
        keys = {key for key, _, _, _ in declared}
        loaded = []
        for index, item in enumerate(value):
            if index % STEP_ITEMS == STEP_ITEMS - 1:
                pause()  # a long list must not hold the worker: others are served between steps
            if not isinstance(item, dict):
                raise ValidationError({index: {"_schema": ["Invalid input type."]}})
            errors = {} if keys.issuperset(item) else {key: ["Unknown field."] for key in item.keys() - keys}
            row = {}
            for key, attribute, field, plan in declared:
                value = item.get(key, missing)
                try:
                    if plan is None:
                        value = field.deserialize(value, key, item)
                    elif value is missing and not field.required:
                        value = plan[0]() if plan[1] else plan[0]
                    elif value is None and field.allow_none:
                        pass
                    elif value is missing or value is None:
                        value = field.deserialize(value, key, item)  # the error
                    else:
                        if type(value) is not plan[2]:
                            value = field._deserialize(value, key, item)
                        if field.validators:
                            field._validate(value)
                except ValidationError as e:
                    errors[key] = e.messages
                else:
                    if value is not missing:
                        row[attribute] = value
            if errors:
                raise ValidationError({index: errors})
            loaded.append(row)
        return loaded


def _load_plan(field):
    """(load default, whether to call it, the type its conversion returns unchanged) for FirstErrorList
    to load `field` inline, or None to call its deserialize: a field with load processors, or whose class
    changes what deserialize does around the conversion."""
    cls = type(field)
    if (field.pre_load or field.post_load or cls.deserialize is not fields.Field.deserialize
            or cls._validate is not fields.Field._validate or cls._validate_missing is not fields.Field._validate_missing):
        return None
    unchanged = None  # no type: the conversion always runs
    if cls._deserialize is fields.String._deserialize:
        unchanged = str  # utils.ensure_text_type returns a str as it is
    elif (cls._deserialize is fields.Number._deserialize and cls._validated is fields.Integer._validated
          and cls._format_num is fields.Number._format_num and field.num_type is int and field.strict):
        unchanged = int  # int(value) of an int, which is not a bool
    return field.load_default, callable(field.load_default), unchanged


# Field classes whose _serialize hands back a value of these exact types unchanged (a str stays the
# str, an int the int, None None): the dump fast path skips the call for them. A subclass that
# overrides _serialize is not one of them. tests/test_schemas.py compares every dump with marshmallow's.
_UNCHANGED = ((fields.String, (str, type(None))), (fields.Integer, (int, type(None))),
              (fields.Boolean, (bool, type(None))))


def _unchanged_types(field):
    for cls, types in _UNCHANGED:
        if isinstance(field, cls) and type(field)._serialize is cls._serialize and not getattr(field, "as_string", False):
            return types
    return ()


class BaseSchema(Schema):
    """Every shape here. Dumping is marshmallow's, minus its per-field indirections (Field.serialize,
    get_value, the accessor), which cost twice what the fields' own conversions do, and minus the
    conversion itself where it would return its input (_UNCHANGED): every message goes through a
    dump for its event and another for the answer. Kept equal to marshmallow's own Schema.dump
    (tests/test_schemas.py) for what these schemas use, which the constructor checks: a key or
    attribute per field (no dotted paths), dump defaults, fields that read no attribute, no dump
    hooks and no `get_attribute` override."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._hooks["pre_dump"] or self._hooks["post_dump"] or type(self).get_attribute is not Schema.get_attribute:
            raise TypeError(f"{type(self).__name__}: the dump fast path has no dump hooks or get_attribute")
        self._dump_plan = []
        for name, field in self.dump_fields.items():
            attribute = field.attribute or name
            if "." in attribute:
                raise TypeError(f"{type(self).__name__}.{name}: the dump fast path reads no dotted attribute")
            self._dump_plan.append((name if field.data_key is None else field.data_key, attribute, name, field,
                                    _unchanged_types(field), _conversion(field)))

    def _serialize(self, obj, *, many=False):
        if many and obj is not None:
            return [self._serialize(item) for item in obj]
        # As marshmallow's get_value: a mapping's key first, then an attribute of that name.
        lookup = obj.get if type(obj) is dict or isinstance(obj, Mapping) else None
        ret = {}
        for key, attribute, name, field, unchanged, convert in self._dump_plan:
            if field._CHECK_ATTRIBUTE:
                value = missing if lookup is None else lookup(attribute, missing)
                if value is missing:
                    value = getattr(obj, attribute, missing)
                if value is missing:
                    default = field.dump_default
                    value = default() if callable(default) else default
                    if value is missing:
                        continue
            else:
                value = None
            ret[key] = value if type(value) in unchanged else convert(value, name, obj)
        return ret


def _conversion(field):
    """What dumps a value of `field`: its _serialize, or for a nested BaseSchema (alone or in a list)
    that schema's _serialize directly. marshmallow's Nested goes through the nested schema's dump,
    whose hooks BaseSchema has none of: skipped, a list of 100 messages dumps in two thirds of the time."""
    cls = type(field)
    if cls._serialize is fields.Nested._serialize:
        def nested(value, attr, obj):
            schema = field.schema  # first, as Nested does: an unknown schema name fails even for None
            if value is None or not isinstance(schema, BaseSchema):
                return field._serialize(value, attr, obj)
            return schema._serialize(value, many=bool(schema.many or field.many))
        return nested
    if cls._serialize is fields.List._serialize and type(field.inner)._serialize is fields.Nested._serialize:
        inner = field.inner

        def listed(value, attr, obj):
            schema = inner.schema
            if value is None or not isinstance(schema, BaseSchema):
                return field._serialize(value, attr, obj)
            many = bool(schema.many or inner.many)
            return [None if each is None else schema._serialize(each, many=many) for each in value]
        return listed
    return field._serialize


# --- agent contract (happy-server shapes) -------------------------------------------------------

class AgentSessionSchema(BaseSchema):
    id = fields.String(dump_only=True)
    seq = fields.Integer(dump_only=True)
    createdAt = Millis(attribute="created_at", dump_only=True)
    updatedAt = Millis(attribute="updated_at", dump_only=True)
    active = fields.Boolean(dump_only=True)
    activeAt = Millis(attribute="last_active_at", dump_only=True)
    metadata = fields.String(dump_only=True)
    metadataVersion = fields.Integer(attribute="metadata_version", dump_only=True)
    agentState = fields.String(attribute="agent_state", allow_none=True, dump_only=True)
    agentStateVersion = fields.Integer(attribute="agent_state_version", dump_only=True)
    dataEncryptionKey = Base64Bytes(attribute="data_encryption_key", allow_none=True, dump_only=True)


class AgentSessionV1Schema(AgentSessionSchema):
    """S as the happy-server contract's v1 routes answer it, with a lastMessage that is always null."""
    lastMessage = fields.Constant(None, dump_only=True, allow_none=True)


class AgentMessageSchema(BaseSchema):
    """M, plus role and metadata (null for agent messages): one message shape for every agent route and
    every event, so a browser can render history and live messages alike."""
    id = fields.String(dump_only=True)
    seq = fields.Integer(dump_only=True)
    content = JsonText(dump_only=True)
    localId = fields.String(attribute="local_id", allow_none=True, dump_only=True)
    createdAt = Millis(attribute="created_at", dump_only=True)
    updatedAt = Millis(attribute="updated_at", dump_only=True)
    role = fields.String(allow_none=True, dump_only=True)
    metadata = JsonText(allow_none=True, dump_only=True)
    deliveredAt = Millis(attribute="delivered_at", allow_none=True, dump_only=True)


class SessionCreateSchema(BaseSchema):
    tag = fields.String(required=True, validate=MaxChars("key_chars"))
    metadata = fields.String(required=True, validate=_max_bytes("metadata_bytes", "metadata"))
    agent_state = fields.String(data_key="agentState", allow_none=True, load_default=None,
                                validate=_max_bytes("metadata_bytes", "agentState"))
    data_encryption_key = Base64Bytes(data_key="dataEncryptionKey", allow_none=True, load_default=None)


class NewMessageSchema(BaseSchema):
    content = MessageContent(required=True)
    local_id = fields.String(data_key="localId", allow_none=True, load_default=None,
                             validate=MaxChars("key_chars"))
    # Optional, for an agent that replays history (client.py import-claude): who said it and when.
    role = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(ROLES))
    created_at = StrictInt(data_key="createdAt", allow_none=True, load_default=None,
                           metadata={"description": "When it was said (epoch ms); default: now (inclusive)."})


class MessagesAppendSchema(BaseSchema):
    messages = FirstErrorList(fields.Nested(NewMessageSchema), required=True, validate=validate.Length(1, 100))


class AppendedMessageSchema(BaseSchema):
    id = fields.String(dump_only=True)
    seq = fields.Integer(dump_only=True)
    localId = fields.String(attribute="local_id", allow_none=True, dump_only=True)
    createdAt = Millis(attribute="created_at", dump_only=True)
    updatedAt = Millis(attribute="updated_at", dump_only=True)


class MetadataUpdateSchema(BaseSchema):
    metadata = fields.String(required=True, validate=_max_bytes("metadata_bytes", "metadata"))
    expected_version = StrictInt(data_key="expectedVersion", required=True, validate=validate.Range(min=0))


class AgentStateUpdateSchema(BaseSchema):
    agent_state = fields.String(data_key="agentState", required=True, allow_none=True,
                                validate=_max_bytes("metadata_bytes", "agentState"))
    expected_version = StrictInt(data_key="expectedVersion", required=True, validate=validate.Range(min=0))


class AliveSchema(BaseSchema):
    time = StrictInt(load_default=None, allow_none=True, validate=validate.Range(min=0))
    thinking = StrictBool(load_default=False)


class EndSchema(BaseSchema):
    time = StrictInt(load_default=None, allow_none=True, validate=validate.Range(min=0))


class ActiveSessionsQuery(BaseSchema):
    limit = Int(load_default=150, validate=validate.Range(1, 500))


CURSOR_PREFIX = "cursor_v1_"


class SessionsPageQuery(BaseSchema):
    # The view checks it, answering a malformed cursor with the happy-server contract's own error; documented here.
    cursor = fields.String(metadata={"pattern": rf"^{CURSOR_PREFIX}[\s\S]"})
    limit = Int(load_default=50, validate=validate.Range(1, 200))
    changed_since = Int(data_key="changedSince", validate=validate.Range(min=1))


MAX_WAIT_SECONDS = 60


class MessagesRangeQuery(BaseSchema):
    after_seq = Int(metadata={"description": "Messages after this seq, ascending. Not with before_seq."})
    before_seq = Int(validate=validate.Range(min=1),
                     metadata={"description": "Messages before this seq, descending. Not with after_seq."})
    limit = Int(load_default=100, validate=validate.Range(1, 500))

    @validates_schema
    def one_direction(self, data, **kwargs):
        if "after_seq" in data and "before_seq" in data:
            raise ValidationError("Give after_seq or before_seq, not both.", "_schema")


class MessagesPageQuery(MessagesRangeQuery):
    wait = fields.Float(load_default=0.0, validate=validate.Range(0, MAX_WAIT_SECONDS),
                        metadata={"description": "Long-poll: with nothing after after_seq, wait up to this "
                                                 "many seconds (decimals allowed) for a message. Not with "
                                                 "before_seq."})

    @validates_schema
    def wait_for_newer(self, data, **kwargs):
        if "before_seq" in data and data["wait"]:
            raise ValidationError("Waiting is for newer messages: wait only goes with after_seq.", "wait")


# --- management contract (snake_case, ISO timestamps) --------------------------------------------

class SessionSchema(BaseSchema):
    id = fields.String(dump_only=True)
    title = fields.String(allow_none=True, dump_only=True)
    system_prompt = fields.String(allow_none=True, dump_only=True)
    tag = fields.String(allow_none=True, dump_only=True)
    active = fields.Boolean(dump_only=True)
    created_at = Iso(dump_only=True)
    updated_at = Iso(dump_only=True)
    last_active_at = Iso(dump_only=True)
    agent = fields.String(allow_none=True, dump_only=True)
    hold = fields.Boolean(dump_only=True)
    awaiting_message = fields.Boolean(dump_only=True)
    usage = fields.Nested(lambda: UsageSchema(), dump_only=True)


class MessageSchema(BaseSchema):
    id = fields.String(dump_only=True)
    seq = fields.Integer(dump_only=True)
    role = fields.String(allow_none=True, dump_only=True)
    content = JsonText(dump_only=True)
    metadata = JsonText(allow_none=True, dump_only=True)
    created_at = Iso(dump_only=True)
    delivered_at = Iso(allow_none=True, dump_only=True)


# --- management contract: request bodies, the export document and its import -------------------

MAX_TITLE_CHARS = 120
MAX_SYSTEM_PROMPT_CHARS = 8000
EXPORT_VERSION = 1


def _blank_to_none(text):
    return text if text and text.strip() else None


class Title(fields.String):
    """A session title: trimmed, then 1..120 characters. Said as a pattern, which holds for the text as
    sent and as trimmed alike, so the OpenAPI document states the rule the server applies."""

    # What str.strip() strips (str.isspace), spelled out: in the ECMA-262 regexes that readers of the
    # document use, \s lacks \x1c-\x1f and \x85 and has \ufeff.
    SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    PATTERN = rf"^[{SPACE}]*[^{SPACE}](?:[\s\S]{{0,{MAX_TITLE_CHARS - 2}}}[^{SPACE}])?[{SPACE}]*$"

    def __init__(self, **kwargs):
        super().__init__(validate=validate.Regexp(
            self.PATTERN, error=f"Length must be between 1 and {MAX_TITLE_CHARS} once trimmed."), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class JsonObject(JsonText):
    """A JSON object (message metadata), stored as its JSON text."""

    def __init__(self, **kwargs):
        super().__init__(limit_name="metadata_bytes", **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("Not a JSON object.")
        return super()._deserialize(value, attr, data, **kwargs)


class ManagedSessionCreateSchema(BaseSchema):
    title = Title(allow_none=True, load_default=None)


class SessionRenameSchema(BaseSchema):
    title = Title(required=True)


class SystemPromptUpdateSchema(BaseSchema):
    system_prompt = fields.String(allow_none=True, load_default=None,
                                  validate=validate.Length(max=MAX_SYSTEM_PROMPT_CHARS))

    @post_load
    def change(self, data, **kwargs):
        """The update_session arguments: none for null or absent (no change), None for a blank prompt (clear)."""
        if data["system_prompt"] is None:
            return {}
        return {"system_prompt": _blank_to_none(data["system_prompt"])}


class ChatMessageSchema(BaseSchema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = MessageContent(required=True)
    metadata = JsonObject(allow_none=True, load_default=None)


class ImportedMessageSchema(ChatMessageSchema):
    """A message of an export document. `seq` is accepted and ignored: the array's order is the order."""
    seq = StrictInt()
    role = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(ROLES))
    local_id = fields.String(allow_none=True, load_default=None, validate=MaxChars("key_chars"))
    created_at = Iso(allow_none=True, load_default=None)


class ImportedSessionSchema(BaseSchema):
    """The session of an export document. Its id, tag and updated_at are accepted and ignored: the
    import is a new session (fresh id, updated now), a copy that an agent's tag must not reach."""
    id = fields.String()
    title = Title(allow_none=True, load_default=None)
    system_prompt = fields.String(allow_none=True, load_default=None,
                                  validate=validate.Length(max=MAX_SYSTEM_PROMPT_CHARS))
    tag = fields.String(allow_none=True)
    metadata = fields.String(load_default="", validate=_max_bytes("metadata_bytes", "metadata"))
    agent_state = fields.String(allow_none=True, load_default=None,
                                validate=_max_bytes("metadata_bytes", "agent_state"))
    created_at = Iso(allow_none=True, load_default=None)
    updated_at = Iso(allow_none=True)

    @post_load
    def restored(self, data, **kwargs):
        return {"title": data["title"], "system_prompt": _blank_to_none(data["system_prompt"]),
                "metadata": data["metadata"], "agent_state": data["agent_state"], "created_at": data["created_at"]}


class ImportDocumentSchema(BaseSchema):
    """An export document. Its body is parsed in steps, at most `limits.import_messages` messages."""
    version = StrictInt(required=True, metadata={"enum": [EXPORT_VERSION]})  # checked first: supported_version
    exported_at = Iso(allow_none=True)
    session = fields.Nested(ImportedSessionSchema, required=True)
    messages = FirstErrorList(fields.Nested(ImportedMessageSchema), required=True,
                              metadata={"description": "In order. No local_id twice."})

    @staticmethod
    def parse(raw):
        return parse_json_in_steps(raw, limits.import_messages)

    @pre_load
    def supported_version(self, data, **kwargs):
        # Checked before anything else: another version's document may differ in every other field.
        if isinstance(data, dict) and data.get("version") != EXPORT_VERSION:
            raise ValidationError(f"Only export version {EXPORT_VERSION} is supported.", "version")
        return data

    @validates_schema
    def distinct_local_ids(self, data, **kwargs):
        first = {}
        for index, message in enumerate(data["messages"]):
            local_id = message["local_id"]
            if local_id is not None:
                if local_id in first:
                    raise ValidationError(
                        {index: {"local_id": [f"Repeats the local_id of message {first[local_id]}."]}}, "messages")
                first[local_id] = index


class ExportedSessionSchema(SessionSchema):
    metadata = fields.String(dump_only=True)
    agent_state = fields.String(allow_none=True, dump_only=True)

    class Meta:
        exclude = ("active", "last_active_at", "agent", "hold", "awaiting_message", "usage")


class ExportedMessageSchema(MessageSchema):
    local_id = fields.String(allow_none=True, dump_only=True)

    class Meta:
        exclude = ("id", "delivered_at")


class ExportDocumentSchema(BaseSchema):
    """Version 1. Left out on purpose: tokens, the update log, versions and keys (operational data)."""
    version = fields.Integer(dump_only=True)
    exported_at = Iso(dump_only=True)
    session = fields.Nested(ExportedSessionSchema, dump_only=True)
    messages = fields.List(fields.Nested(ExportedMessageSchema), dump_only=True)


class SessionItems(BaseSchema):
    items = fields.List(fields.Nested(SessionSchema), dump_only=True)


class SessionListQuery(BaseSchema):
    """Without any parameter, the whole list (the management contract's shape); with any, one page."""
    limit = Int(validate=validate.Range(1, 500), metadata={"description": "Sessions per page (default 100)."})
    cursor = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}\.[0-9A-Za-z_-]{1,255}$",
                                                    error="Not a cursor this server made."),
                           metadata={"description": "next_cursor of the previous page."})
    active = fields.Boolean(truthy={"true"}, falsy={"false"},
                            metadata={"description": "Only sessions whose agent is (true) or is not (false) active."})
    waiting = fields.Boolean(truthy={"true"}, falsy={"false"},
                             metadata={"description": "Only sessions waiting (true) or not (false) for the person: "
                                                      "a pending request, or a held Claude awaiting a message."})
    # 256 characters, percent-encoded (up to 9 bytes each), keep the request line under gunicorn's 4,094 bytes.
    project = fields.String(validate=validate.Length(1, 256),
                            metadata={"description": "Only sessions whose metadata names this working directory "
                                                     "(`cwd`), as GET /api/projects lists them."})


class SessionShowQuery(BaseSchema):
    messages = fields.Boolean(truthy={"true"}, falsy={"false"}, load_default=True,
                              metadata={"description": "false: the session alone, without its messages."})


class Project(BaseSchema):
    directory = fields.String(dump_only=True)
    sessions = fields.Integer(dump_only=True)
    updated_at = Iso(dump_only=True)


class Projects(BaseSchema):
    items = fields.List(fields.Nested(Project), dump_only=True)


class SessionListPage(SessionItems):
    next_cursor = fields.String(allow_none=True, dump_only=True)


class ManagedMessagePage(BaseSchema):
    messages = fields.List(fields.Nested(MessageSchema), dump_only=True)
    has_more = fields.Boolean(dump_only=True)


class SessionDetail(SessionSchema):
    messages = fields.List(fields.Nested(MessageSchema), dump_only=True)


class SearchCursor(fields.String):
    """next_cursor of a search page: which index ("t" titles, "m" messages) and the last row read."""
    PATTERN = re.compile(r"^([tm])\.([0-9]{1,18})$")

    def __init__(self, **kwargs):
        super().__init__(metadata={"pattern": self.PATTERN.pattern}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        match = self.PATTERN.match(super()._deserialize(value, attr, data, **kwargs))
        if match is None:
            raise ValidationError("Not a cursor this server made.")
        return match[1], int(match[2])


class SearchQuery(BaseSchema):
    q = fields.String(required=True, validate=validate.Length(1, 500),
                      metadata={"description": 'An FTS5 query: words (all must match), "a phrase", prefix*, '
                                               "OR, NOT, NEAR(...). Case and accents are ignored."})
    session_id = fields.String(load_default=None, validate=validate.Length(1, 255))
    limit = Int(load_default=20, validate=validate.Range(1, 100))
    cursor = SearchCursor(load_default=None)


class SnippetSegment(BaseSchema):
    text = fields.String(dump_only=True)
    match = fields.Boolean(dump_only=True)


class SearchHit(BaseSchema):
    session_id = fields.String(dump_only=True)
    title = fields.String(allow_none=True, dump_only=True)
    message_id = fields.String(allow_none=True, dump_only=True,
                               metadata={"description": "Null for a hit on the session's title."})
    seq = fields.Integer(allow_none=True, dump_only=True)
    role = fields.String(allow_none=True, dump_only=True)
    created_at = Iso(dump_only=True)
    snippet = fields.List(fields.Nested(SnippetSegment), dump_only=True)


class SearchResults(BaseSchema):
    items = fields.List(fields.Nested(SearchHit), dump_only=True)
    next_cursor = fields.String(allow_none=True, dump_only=True)


class Deleted(BaseSchema):
    deleted = fields.Integer(dump_only=True)


class ImportResult(BaseSchema):
    session = fields.Nested(SessionSchema, dump_only=True)
    imported_messages = fields.Integer(dump_only=True)


# --- real-time update bodies ---------------------------------------------------------------------

class EventSessionSchema(AgentSessionSchema):
    """S plus what a browser needs to label a session it has never fetched."""
    tag = fields.String(allow_none=True, dump_only=True)
    title = fields.String(allow_none=True, dump_only=True)
    agent = fields.String(allow_none=True, dump_only=True)
    hold = fields.Boolean(dump_only=True)


# --- requests: what an agent waits on a person for (Claude Code's permission requests) -----------

REQUEST_STATUSES = ("pending", "allowed", "denied", "expired", "cancelled")
MAX_REASON_CHARS = 2000


class RequestSchema(BaseSchema):
    id = fields.String(dump_only=True)
    session_id = fields.String(dump_only=True)
    kind = fields.String(dump_only=True)
    tool = fields.String(allow_none=True, dump_only=True)
    input = JsonText(allow_none=True, dump_only=True)
    suggestions = JsonText(allow_none=True, dump_only=True)
    status = fields.String(dump_only=True, validate=validate.OneOf(REQUEST_STATUSES))
    reason = fields.String(allow_none=True, dump_only=True)
    created_at = Iso(dump_only=True)
    decided_at = Iso(allow_none=True, dump_only=True)


class EventRequestSchema(BaseSchema):
    """A request in `new-request` / `update-request` updates (camelCase, epoch ms, like every update)."""
    id = fields.String(dump_only=True)
    sid = fields.String(attribute="session_id", dump_only=True)
    kind = fields.String(dump_only=True)
    tool = fields.String(allow_none=True, dump_only=True)
    input = JsonText(allow_none=True, dump_only=True)
    suggestions = JsonText(allow_none=True, dump_only=True)
    status = fields.String(dump_only=True)
    reason = fields.String(allow_none=True, dump_only=True)
    createdAt = Millis(attribute="created_at", dump_only=True)
    decidedAt = Millis(attribute="decided_at", allow_none=True, dump_only=True)


class RequestItems(BaseSchema):
    items = fields.List(fields.Nested(RequestSchema), dump_only=True)


class RequestsQuery(BaseSchema):
    status = fields.String(validate=validate.OneOf(REQUEST_STATUSES))


class DecisionSchema(BaseSchema):
    decision = fields.String(required=True, validate=validate.OneOf(["allow", "deny"]))
    reason = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=MAX_REASON_CHARS))


class HoldSchema(BaseSchema):
    hold = StrictBool(required=True)


class NotPending(BaseSchema):
    error = fields.String(dump_only=True)
    message = fields.String(dump_only=True)
    status = fields.String(dump_only=True, validate=validate.OneOf(REQUEST_STATUSES))


# --- Claude Code's hooks -------------------------------------------------------------------------

class ClaudeHookSchema(BaseSchema):
    """A hook's input as Claude Code sends it. Only what identifies it is required; every other field,
    known or not, is kept as sent (Claude Code adds fields with every release)."""
    session_id = fields.String(required=True, validate=validate.Length(1, 200))
    hook_event_name = fields.String(required=True, validate=validate.Length(1, 100))

    class Meta:
        unknown = INCLUDE


class HookAnswer(BaseSchema):
    """What Claude Code reads from a hook's answer; `{}` says nothing."""
    hookSpecificOutput = fields.Dict(dump_only=True)
    decision = fields.String(dump_only=True)
    reason = fields.String(dump_only=True)


# --- websocket frames (each client event loads like its HTTP twin, plus the session id) ----------

class FrameSchema(BaseSchema):
    event = fields.String(required=True)
    data = fields.Raw(load_default=None, allow_none=True)
    ack = StrictInt(load_default=None, allow_none=True)


class AuthSchema(BaseSchema):
    token = fields.String(required=True)
    client_type = fields.String(data_key="clientType", load_default="user-scoped",
                                validate=validate.OneOf(["user-scoped", "session-scoped"]))
    session_id = fields.String(data_key="sessionId", load_default=None, allow_none=True)
    since = StrictInt(load_default=None, allow_none=True, validate=validate.Range(min=0))

    @validates_schema
    def scoped_needs_session(self, data, **kwargs):
        if data["client_type"] == "session-scoped" and not data["session_id"]:
            raise ValidationError("A session-scoped connection needs a sessionId.", "sessionId")


class SidMixin(BaseSchema):
    sid = fields.String(required=True)


class MessageFrameSchema(SidMixin, NewMessageSchema):
    pass


class MetadataFrameSchema(SidMixin, MetadataUpdateSchema):
    pass


class AgentStateFrameSchema(SidMixin, AgentStateUpdateSchema):
    pass


class AliveFrameSchema(SidMixin, AliveSchema):
    pass


class EndFrameSchema(SidMixin, EndSchema):
    pass


class PingSchema(BaseSchema):
    pass


# --- response envelopes (what the views dump and the OpenAPI document shows) ----------------------

class SessionEnvelope(BaseSchema):
    session = fields.Nested(AgentSessionV1Schema, dump_only=True)


class SessionListV1(BaseSchema):
    sessions = fields.List(fields.Nested(AgentSessionV1Schema), dump_only=True)


class SessionList(BaseSchema):
    sessions = fields.List(fields.Nested(AgentSessionSchema), dump_only=True)


class SessionPage(SessionList):
    nextCursor = fields.String(allow_none=True, dump_only=True)
    hasNext = fields.Boolean(dump_only=True)


class MessageList(BaseSchema):
    messages = fields.List(fields.Nested(AgentMessageSchema), dump_only=True)


class MessagePage(MessageList):
    hasMore = fields.Boolean(dump_only=True)


class AppendedList(BaseSchema):
    messages = fields.List(fields.Nested(AppendedMessageSchema), dump_only=True)


class MetadataResult(BaseSchema):
    result = fields.String(dump_only=True, validate=validate.OneOf(["success", "version-mismatch"]))
    version = fields.Integer(dump_only=True)
    metadata = fields.String(dump_only=True)


class AgentStateResult(BaseSchema):
    result = fields.String(dump_only=True, validate=validate.OneOf(["success", "version-mismatch"]))
    version = fields.Integer(dump_only=True)
    agentState = fields.String(attribute="agent_state", allow_none=True, dump_only=True)


class Success(BaseSchema):
    success = fields.Boolean(dump_only=True)


class Health(BaseSchema):
    status = fields.String(dump_only=True)


class Me(BaseSchema):
    account = fields.String(dump_only=True)
    token_name = fields.String(dump_only=True)


session_envelope = SessionEnvelope()
session_list_v1 = SessionListV1()
session_list = SessionList()
session_page = SessionPage()
message_list = MessageList()
message_page = MessagePage()
appended_list = AppendedList()
metadata_result = MetadataResult()
agent_state_result = AgentStateResult()
success = Success()
health = Health()
me = Me()
session_create_schema = SessionCreateSchema()
messages_append_schema = MessagesAppendSchema()
metadata_update_schema = MetadataUpdateSchema()
agent_state_update_schema = AgentStateUpdateSchema()
alive_schema = AliveSchema()
end_schema = EndSchema()
active_sessions_query = ActiveSessionsQuery()
sessions_page_query = SessionsPageQuery()
messages_page_query = MessagesPageQuery()
session_schema = SessionSchema()
message_schema = MessageSchema()
messages_schema = MessageSchema(many=True)
event_session_schema = EventSessionSchema()
agent_message_schema = AgentMessageSchema()
session_items = SessionItems()
deleted = Deleted()
search_query = SearchQuery()
session_list_query = SessionListQuery()
session_list_page = SessionListPage()
projects = Projects()
session_show_query = SessionShowQuery()
messages_range_query = MessagesRangeQuery()
managed_message_page = ManagedMessagePage()
search_results = SearchResults()
import_result = ImportResult()
managed_session_create_schema = ManagedSessionCreateSchema()
session_rename_schema = SessionRenameSchema()
system_prompt_update_schema = SystemPromptUpdateSchema()
chat_message_schema = ChatMessageSchema()
import_document_schema = ImportDocumentSchema()
export_document_schema = ExportDocumentSchema()
exported_messages_schema = ExportedMessageSchema(many=True)
frame_schema = FrameSchema()
auth_schema = AuthSchema()
appended_message_schema = AppendedMessageSchema()
request_schema = RequestSchema()
event_request_schema = EventRequestSchema()
request_items = RequestItems()
requests_query = RequestsQuery()
decision_schema = DecisionSchema()
hold_schema = HoldSchema()
not_pending = NotPending()
claude_hook_schema = ClaudeHookSchema()


def with_messages(head, pages, messages_schema):
    """The JSON text of the object `head` with a "messages" array, in chunks: one per page of
    message rows, so a session of any length is written without holding it whole."""
    yield to_json(head)[:-1] + ',"messages":['
    separator = ""
    for page in pages:
        yield separator + to_json(messages_schema.dump(page))[1:-1]
        separator = ","
    yield "]}"


def export_document(session, exported_at, pages):
    """The version-1 export document of `session` (its message rows in `pages`), in chunks."""
    head = export_document_schema.dump({"version": EXPORT_VERSION, "exported_at": exported_at, "session": session})
    return with_messages(head, pages, exported_messages_schema)


# --- notifications: webhooks and Web Push (management contract) -----------------------------------

WEBHOOK_EVENTS = ("request.created", "session.waiting", "session.ended", "message.created")
DEFAULT_WEBHOOK_EVENTS = ("request.created", "session.waiting", "session.ended")  # message.created: opt in
WEBHOOK_FORMATS = ("json", "ntfy", "slack")
MAX_URL_CHARS = 2048


http_url = validate.URL(schemes={"http", "https"}, require_tld=False)


def _http_url(**kwargs):
    """An http(s) URL with a host. The pattern documents the scheme; the host's own rules are said in
    words (OpenAPI has no keyword for them), and checked by `http_url`."""
    return fields.String(validate=[validate.Length(max=MAX_URL_CHARS), http_url], metadata={
        "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "description": "An http or https URL with a valid host."}, **kwargs)


class WebhookCreateSchema(BaseSchema):
    url = _http_url(required=True)
    events = fields.List(fields.String(validate=validate.OneOf(WEBHOOK_EVENTS)), load_default=list(DEFAULT_WEBHOOK_EVENTS),
                         validate=validate.Length(min=1, max=len(WEBHOOK_EVENTS)))
    format = fields.String(load_default="json", validate=validate.OneOf(WEBHOOK_FORMATS))


class WebhookRunSchema(BaseSchema):
    id = fields.String(dump_only=True)
    webhook_id = fields.Integer(dump_only=True)
    session_id = fields.String(dump_only=True)
    event = fields.String(dump_only=True)
    status = fields.String(dump_only=True)  # pending (queued or waiting to retry), delivered, failed (gave up)
    attempts = fields.Integer(dump_only=True)
    response_status = fields.Integer(allow_none=True, dump_only=True)
    duration_ms = fields.Integer(allow_none=True, dump_only=True)
    error = fields.String(allow_none=True, dump_only=True)
    next_attempt_at = Iso(allow_none=True, dump_only=True)
    created_at = Iso(dump_only=True)


class WebhookSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    url = fields.String(dump_only=True)
    format = fields.String(dump_only=True)
    events = fields.Function(lambda webhook: webhook.events.split(","), dump_only=True)
    created_at = Iso(dump_only=True)
    last_run = fields.Nested(WebhookRunSchema, allow_none=True, dump_only=True)


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(dump_only=True)  # whsec_...: answered by the create, never again


class WebhookItems(BaseSchema):
    items = fields.List(fields.Nested(WebhookSchema), dump_only=True)


class WebhookRunItems(BaseSchema):
    items = fields.List(fields.Nested(WebhookRunSchema), dump_only=True)


def _base64url(size, what, **kwargs):
    """`size` bytes in unpadded base64url (as PushSubscription.toJSON() gives them; padding accepted)."""
    chars = (size * 8 + 5) // 6
    return fields.String(validate=validate.Regexp(f"^[A-Za-z0-9_-]{{{chars}}}=*$", error=f"Not {what}: "
                                                  f"{size} bytes in base64url."), **kwargs)


def p256_point(value):
    """The browser's key must be a point on P-256: else every push to it would fail, retried in vain."""
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, binascii.Error):
        raise ValidationError("Not a point on P-256.") from None


class PushKeysSchema(BaseSchema):
    p256dh = _base64url(65, "a P-256 public key", required=True, metadata={
        "description": "The browser's P-256 public key, an uncompressed point on the curve."})
    auth = _base64url(16, "the auth secret", required=True)

    @validates_schema
    def _on_the_curve(self, data, **kwargs):
        if "p256dh" in data:
            try:
                p256_point(data["p256dh"])
            except ValidationError as e:
                raise ValidationError(e.messages, "p256dh") from None


class PushSubscriptionCreateSchema(BaseSchema):
    """What the page's `PushSubscription.toJSON()` gives."""
    endpoint = _http_url(required=True)
    keys = fields.Nested(PushKeysSchema, required=True)
    expirationTime = Int(allow_none=True, load_default=None)  # sent by browsers; not used


class PushSubscriptionDeleteSchema(BaseSchema):
    endpoint = fields.String(required=True, validate=validate.Length(min=1, max=MAX_URL_CHARS))


class PushSubscriptionSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    endpoint = fields.String(dump_only=True)
    created_at = Iso(dump_only=True)


class PushKey(BaseSchema):
    public_key = fields.String(dump_only=True)  # applicationServerKey for pushManager.subscribe


webhook_create_schema = WebhookCreateSchema()
webhook_created_schema = WebhookCreatedSchema()
webhook_items = WebhookItems()
webhook_run_items = WebhookRunItems()
push_subscription_create_schema = PushSubscriptionCreateSchema()
push_subscription_delete_schema = PushSubscriptionDeleteSchema()
push_subscription_schema = PushSubscriptionSchema()
push_key = PushKey()


# --- usage and cost ------------------------------------------------------------------------------

class Cost(fields.Float):
    """USD: a JSON number >= 0 (no strings, no booleans), rounded to a millionth of a dollar on dump."""

    def __init__(self, maximum=None, **kwargs):
        super().__init__(validate=validate.Range(min=0, max=maximum), allow_nan=False, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else round(value, 6)


# Bounds far past any real report, so that sums over millions of reports stay within SQLite's integers.
MAX_REPORT_TOKENS = 10 ** 12
MAX_REPORT_USD = 10 ** 9


def _tokens():
    return StrictInt(load_default=0, validate=validate.Range(0, MAX_REPORT_TOKENS))


class UsageTokensSchema(BaseSchema):
    input = _tokens()
    output = _tokens()
    cache_creation = _tokens()
    cache_read = _tokens()


class UsageCostSchema(BaseSchema):
    total = Cost(required=True, maximum=MAX_REPORT_USD)


class UsageReportSchema(BaseSchema):
    """POST /v1/sessions/:id/usage: happy-server's usage report, plus `time`."""
    key = fields.String(required=True, validate=MaxChars("key_chars"))
    model = fields.String(allow_none=True, load_default=None, validate=MaxChars("key_chars"))
    tokens = fields.Nested(UsageTokensSchema, required=True)
    cost = fields.Nested(UsageCostSchema,
                         metadata={"description": "What it cost; absent: priced from the server's table by model."})
    time = StrictInt(allow_none=True, load_default=None,
                     metadata={"description": "When the usage happened (epoch ms; default and at most now): "
                                              "the day /api/usage counts it for."})


class UsageReportResult(BaseSchema):
    success = fields.Boolean(dump_only=True)
    reportId = fields.String(attribute="id", dump_only=True)
    cost = fields.Function(lambda row: {"total": round(row["cost_usd"], 6)}, dump_only=True)
    createdAt = Millis(attribute="created_at", dump_only=True)
    updatedAt = Millis(attribute="updated_at", dump_only=True)


class UsageSchema(BaseSchema):
    """Token counts and USD, summed: a session's (`usage` on the session object) or a group's."""
    input_tokens = fields.Integer(dump_only=True)
    output_tokens = fields.Integer(dump_only=True)
    cache_creation_tokens = fields.Integer(dump_only=True)
    cache_read_tokens = fields.Integer(dump_only=True)
    cost_usd = Cost(dump_only=True)


class UsageDaySchema(UsageSchema):
    day = fields.String(dump_only=True, metadata={"description": "YYYY-MM-DD, UTC"})


class UsageSessionSchema(UsageSchema):
    session_id = fields.String(dump_only=True)
    title = fields.String(allow_none=True, dump_only=True)


USAGE_GROUPS = ("day", "session")
DEFAULT_USAGE_DAYS = 30


class UsageQuery(BaseSchema):
    start = Iso(data_key="from", metadata={"description": "Start (inclusive); default: `to` minus 30 days."})
    end = Iso(data_key="to", metadata={"description": "End (exclusive); default: now (inclusive)."})
    group = fields.String(load_default="day", validate=validate.OneOf(USAGE_GROUPS))
    limit = Int(load_default=100, validate=validate.Range(1, 1000),
                metadata={"description": "group=session: the most expensive sessions, at most this many."})

    @post_load
    def window(self, data, **kwargs):
        """The window's defaults; one that ends before it starts holds nothing (answered, not refused)."""
        if "end" not in data:
            data["end"] = _now_ms() + 1  # everything reported up to now, this millisecond included
        if "start" not in data:
            data["start"] = data["end"] - DEFAULT_USAGE_DAYS * 86_400_000
        return data


def _now_ms():
    return int(datetime.now(timezone.utc).timestamp() * 1000)


class UsageSummary(BaseSchema):
    start = Iso(data_key="from", dump_only=True)
    end = Iso(data_key="to", dump_only=True)
    group = fields.String(dump_only=True)
    total = fields.Nested(UsageSchema, dump_only=True)
    items = fields.List(fields.Raw(), dump_only=True, metadata={
        "description": "group=day: UsageDay per day with usage, oldest first; group=session: UsageSession "
                       "per session, most expensive first."})


usage_schema = UsageSchema()
usage_report_schema = UsageReportSchema()
usage_report_result = UsageReportResult()
usage_query = UsageQuery()
usage_summary = UsageSummary()
usage_days = UsageDaySchema(many=True)
usage_sessions = UsageSessionSchema(many=True)
