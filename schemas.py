"""marshmallow schemas: every request body and query string is loaded here, every response dumped here.

HTTP responses and websocket events share these dumps, so one shape has one definition. Loaded dicts
use the model's snake_case names whatever the wire spelling; nothing here touches the database.
"""
import base64
import binascii
import json
from datetime import datetime, timezone

from marshmallow import Schema, ValidationError, fields, validate, validates_schema


class Limits:
    """Size limits, set from the app config (create_app) before any request is served."""
    content_bytes = 1 << 20
    metadata_bytes = 1 << 20
    key_chars = 256


limits = Limits()


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text):
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


def _max_bytes(limit_name, what):
    def check(value):
        if value is not None and len(value.encode()) > getattr(limits, limit_name):
            raise ValidationError(f"{what} is larger than {getattr(limits, limit_name)} bytes.")
    return check


def _max_chars(limit_name):
    def check(value):
        if value is not None and not 1 <= len(value) <= getattr(limits, limit_name):
            raise ValidationError(f"Length must be between 1 and {getattr(limits, limit_name)}.")
    return check


class StrictInt(fields.Integer):
    """JSON bodies must carry real integers: no "5", no 5.0, no true."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictBool(fields.Boolean):
    truthy = {True}
    falsy = {False}


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
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("Not a valid base64 string.") from None


class JsonText(fields.Raw):
    """Any JSON value on the wire, its compact JSON text in the database (stored verbatim)."""

    def __init__(self, limit_name="content_bytes", **kwargs):
        self.limit_name = limit_name
        super().__init__(**kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else json.loads(value)

    def _deserialize(self, value, attr, data, **kwargs):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode()) > getattr(limits, self.limit_name):
            raise ValidationError(f"Larger than {getattr(limits, self.limit_name)} bytes serialized.")
        return text


# --- agent contract (happy-server shapes) -------------------------------------------------------

class AgentSessionSchema(Schema):
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
    """S as the seed's v1 routes answer it, with a lastMessage that is always null."""
    lastMessage = fields.Constant(None, dump_only=True, allow_none=True)


class AgentMessageSchema(Schema):
    id = fields.String(dump_only=True)
    seq = fields.Integer(dump_only=True)
    content = JsonText(dump_only=True)
    localId = fields.String(attribute="local_id", allow_none=True, dump_only=True)
    createdAt = Millis(attribute="created_at", dump_only=True)
    updatedAt = Millis(attribute="updated_at", dump_only=True)


class SessionCreateSchema(Schema):
    tag = fields.String(required=True, validate=_max_chars("key_chars"))
    metadata = fields.String(required=True, validate=_max_bytes("metadata_bytes", "metadata"))
    agent_state = fields.String(data_key="agentState", allow_none=True, load_default=None,
                                validate=_max_bytes("metadata_bytes", "agentState"))
    data_encryption_key = Base64Bytes(data_key="dataEncryptionKey", allow_none=True, load_default=None)


class NewMessageSchema(Schema):
    content = JsonText(required=True)
    local_id = fields.String(data_key="localId", allow_none=True, load_default=None,
                             validate=_max_chars("key_chars"))


class MessagesAppendSchema(Schema):
    messages = fields.List(fields.Nested(NewMessageSchema), required=True, validate=validate.Length(1, 100))


class AppendedMessageSchema(Schema):
    id = fields.String(dump_only=True)
    seq = fields.Integer(dump_only=True)
    localId = fields.String(attribute="local_id", allow_none=True, dump_only=True)
    createdAt = Millis(attribute="created_at", dump_only=True)
    updatedAt = Millis(attribute="updated_at", dump_only=True)


class MetadataUpdateSchema(Schema):
    metadata = fields.String(required=True, validate=_max_bytes("metadata_bytes", "metadata"))
    expected_version = StrictInt(data_key="expectedVersion", required=True, validate=validate.Range(min=0))


class AgentStateUpdateSchema(Schema):
    agent_state = fields.String(data_key="agentState", required=True, allow_none=True,
                                validate=_max_bytes("metadata_bytes", "agentState"))
    expected_version = StrictInt(data_key="expectedVersion", required=True, validate=validate.Range(min=0))


class AliveSchema(Schema):
    time = StrictInt(load_default=None, allow_none=True, validate=validate.Range(min=0))
    thinking = StrictBool(load_default=False)


class EndSchema(Schema):
    time = StrictInt(load_default=None, allow_none=True, validate=validate.Range(min=0))


class ActiveSessionsQuery(Schema):
    limit = fields.Integer(load_default=150, validate=validate.Range(1, 500))


class SessionsPageQuery(Schema):
    cursor = fields.String()
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    changed_since = fields.Integer(data_key="changedSince", validate=validate.Range(min=1))


class MessagesPageQuery(Schema):
    after_seq = fields.Integer(validate=validate.Range(min=0))
    before_seq = fields.Integer(validate=validate.Range(min=1))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))

    @validates_schema
    def one_direction(self, data, **kwargs):
        if "after_seq" in data and "before_seq" in data:
            raise ValidationError("Give after_seq or before_seq, not both.", "_schema")


# --- management contract (snake_case, ISO timestamps) --------------------------------------------

class SessionSchema(Schema):
    id = fields.String(dump_only=True)
    title = fields.String(allow_none=True, dump_only=True)
    system_prompt = fields.String(allow_none=True, dump_only=True)
    tag = fields.String(allow_none=True, dump_only=True)
    active = fields.Boolean(dump_only=True)
    created_at = Iso(dump_only=True)
    updated_at = Iso(dump_only=True)
    last_active_at = Iso(dump_only=True)


class MessageSchema(Schema):
    id = fields.String(dump_only=True)
    seq = fields.Integer(dump_only=True)
    role = fields.String(allow_none=True, dump_only=True)
    content = JsonText(dump_only=True)
    metadata = JsonText(allow_none=True, dump_only=True)
    created_at = Iso(dump_only=True)


# --- real-time update bodies ---------------------------------------------------------------------

class EventSessionSchema(AgentSessionSchema):
    """S plus what a browser needs to label a session it has never fetched."""
    tag = fields.String(allow_none=True, dump_only=True)
    title = fields.String(allow_none=True, dump_only=True)


class EventMessageSchema(AgentMessageSchema):
    """M plus what a browser needs to render it: role and metadata."""
    role = fields.String(allow_none=True, dump_only=True)
    metadata = JsonText(allow_none=True, dump_only=True)


# --- websocket frames (each client event loads like its HTTP twin, plus the session id) ----------

class FrameSchema(Schema):
    event = fields.String(required=True)
    data = fields.Raw(load_default=None, allow_none=True)
    ack = StrictInt(load_default=None, allow_none=True)


class AuthSchema(Schema):
    token = fields.String(required=True)
    client_type = fields.String(data_key="clientType", load_default="user-scoped",
                                validate=validate.OneOf(["user-scoped", "session-scoped"]))
    session_id = fields.String(data_key="sessionId", load_default=None, allow_none=True)
    since = StrictInt(load_default=None, allow_none=True, validate=validate.Range(min=0))

    @validates_schema
    def scoped_needs_session(self, data, **kwargs):
        if data["client_type"] == "session-scoped" and not data["session_id"]:
            raise ValidationError("A session-scoped connection needs a sessionId.", "sessionId")


class SidMixin(Schema):
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


class PingSchema(Schema):
    pass


# --- response envelopes (what the views dump and the OpenAPI document shows) ----------------------

class SessionEnvelope(Schema):
    session = fields.Nested(AgentSessionV1Schema, dump_only=True)


class SessionListV1(Schema):
    sessions = fields.List(fields.Nested(AgentSessionV1Schema), dump_only=True)


class SessionList(Schema):
    sessions = fields.List(fields.Nested(AgentSessionSchema), dump_only=True)


class SessionPage(SessionList):
    nextCursor = fields.String(allow_none=True, dump_only=True)
    hasNext = fields.Boolean(dump_only=True)


class MessageList(Schema):
    messages = fields.List(fields.Nested(AgentMessageSchema), dump_only=True)


class MessagePage(MessageList):
    hasMore = fields.Boolean(dump_only=True)


class AppendedList(Schema):
    messages = fields.List(fields.Nested(AppendedMessageSchema), dump_only=True)


class MetadataResult(Schema):
    result = fields.String(dump_only=True, validate=validate.OneOf(["success", "version-mismatch"]))
    version = fields.Integer(dump_only=True)
    metadata = fields.String(dump_only=True)


class AgentStateResult(Schema):
    result = fields.String(dump_only=True, validate=validate.OneOf(["success", "version-mismatch"]))
    version = fields.Integer(dump_only=True)
    agentState = fields.String(attribute="agent_state", allow_none=True, dump_only=True)


class Success(Schema):
    success = fields.Boolean(dump_only=True)


class Health(Schema):
    status = fields.String(dump_only=True)


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
session_create_schema = SessionCreateSchema()
messages_append_schema = MessagesAppendSchema()
appended_messages_schema = AppendedMessageSchema(many=True)
metadata_update_schema = MetadataUpdateSchema()
agent_state_update_schema = AgentStateUpdateSchema()
alive_schema = AliveSchema()
end_schema = EndSchema()
active_sessions_query = ActiveSessionsQuery()
sessions_page_query = SessionsPageQuery()
messages_page_query = MessagesPageQuery()
session_schema = SessionSchema()
sessions_schema = SessionSchema(many=True)
message_schema = MessageSchema()
messages_schema = MessageSchema(many=True)
event_session_schema = EventSessionSchema()
event_message_schema = EventMessageSchema()
frame_schema = FrameSchema()
auth_schema = AuthSchema()
appended_message_schema = AppendedMessageSchema()
