"""What Claude Code's hook events mean to Switchboard: the message each one stores, the short activity
line of a tool call, the answers Claude Code reads, and the settings block that points its hooks here.

Pure functions of the hook input: no database, no HTTP. routes/hooks.py calls these and domain.py
writes what they return.
"""
import hashlib
import json

AGENT = "claude-code"
TAG_PREFIX = "claude:"
EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse",
          "PostToolUseFailure", "Notification", "Stop", "SubagentStop", "SessionEnd")
TOOL_EVENTS = ("PreToolUse", "PermissionRequest", "PostToolUse", "PostToolUseFailure")  # these take a matcher
DETAIL_CHARS = 200
TITLE_CHARS = 120
DEFAULT_DENY = "Denied in Switchboard."
INSTRUCTIONS_PREFIX = "Session instructions from Switchboard:"
STEERING_PREFIX = "The user sent this from Switchboard:"


def key(raw_body):
    """The event's identity: Claude Code sends no event id, and a repeated hook sends the same bytes."""
    return hashlib.sha256(raw_body).hexdigest()[:32]


def _text(value):
    return value if isinstance(value, str) else None


def _dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def metadata(hook, previous):
    """The session's metadata object kept current from a hook (model and mode kept when not sent)."""
    values = {"agent": AGENT, "cwd": _text(hook.get("cwd")) or previous.get("cwd"),
              "transcriptPath": _text(hook.get("transcript_path")) or previous.get("transcriptPath"),
              "permissionMode": _text(hook.get("permission_mode")) or previous.get("permissionMode")}
    model = hook.get("model")
    if isinstance(model, dict):  # some releases send {"id", "display_name"}
        model = model.get("id")
    model = (model if isinstance(model, str) else None) or previous.get("model")
    if model:
        values["model"] = model
    return values


def title(hook):
    """A title for a session that has none: Claude's session_title, else the prompt's first line."""
    candidate = _text(hook.get("session_title"))
    if not candidate and hook["hook_event_name"] == "UserPromptSubmit":
        candidate = next((line.strip() for line in (_text(hook.get("prompt")) or "").splitlines() if line.strip()), None)
    return (candidate[:TITLE_CHARS].strip() or None) if candidate else None


def message(hook):
    """(role, content, metadata) of the message an event stores, or None."""
    event = hook["hook_event_name"]
    if event == "UserPromptSubmit":
        prompt = _text(hook.get("prompt"))
        return ("user", prompt, None) if prompt else None
    if event == "PostToolUse":
        return "tool", {"tool": hook.get("tool_name"), "input": hook.get("tool_input"),
                        "response": hook.get("tool_response"), "durationMs": hook.get("duration_ms")}, None
    if event == "PostToolUseFailure":
        return "tool", {"tool": hook.get("tool_name"), "input": hook.get("tool_input"),
                        "error": hook.get("error"), "interrupted": bool(hook.get("is_interrupt"))}, None
    if event == "Notification":
        text = _text(hook.get("message"))
        kind = _text(hook.get("notification_type"))
        return ("system", text, {"notificationType": kind}) if text else None
    if event in ("Stop", "SubagentStop"):
        text = _text(hook.get("last_assistant_message"))
        return ("assistant", text, None) if text else None
    if event == "SessionEnd":
        return "system", f"Session ended ({_text(hook.get('reason')) or 'unknown'})", None
    return None


# Notification types that ask for the person (Claude Code's documented ones); a Notification without a
# type (older Claude Code) asks too. Others (auth_success, elicitation_complete, ...) only inform.
WAITING_NOTIFICATIONS = frozenset({"permission_prompt", "idle_prompt", "elicitation_dialog"})


def waits(hook):
    """Whether a Notification hook says Claude waits for the person."""
    kind = hook.get("notification_type")
    return kind is None or _text(kind) in WAITING_NOTIFICATIONS


def detail(tool_input):
    """The short line shown for a running tool: its command, file path, pattern, URL or query."""
    if not isinstance(tool_input, dict):
        return None
    for name in ("command", "file_path", "notebook_path", "path", "pattern", "url", "query", "description", "prompt"):
        value = tool_input.get(name)
        if isinstance(value, str) and value.strip():
            line = value.strip().splitlines()[0]
            return line if len(line) <= DETAIL_CHARS else line[:DETAIL_CHARS - 1] + "…"
    return None


def cut(text, max_chars):
    """`text` of at most `max_chars` characters: over it, its start and how much went."""
    if len(text) <= max_chars:
        return text
    keep = max_chars - len(f"… [{len(text)} characters cut]")
    return text[:keep] + f"… [{len(text) - keep} characters cut]"


def fit(content, limit):
    """`content` encoded as JSON text of at most `limit` bytes. Over it, text is cut; in an object the
    largest strings are cut (each keeps its start and says how much went) and `"truncated": true` is
    added. Never refused: Claude Code's output is kept as far as it fits."""
    text = _dumps(content)
    if len(text.encode()) <= limit:
        return text
    if isinstance(content, str):
        keep = limit // 2
        while True:  # escaped characters take more bytes than they are characters: shrink until it fits
            text = _dumps(content[:keep] + f"… [{len(content) - keep} characters cut]")
            if len(text.encode()) <= limit or keep == 0:
                return text
            keep //= 2
    content = json.loads(text)  # a copy to cut
    if not isinstance(content, dict):
        content = {"value": content}
    content["truncated"] = True
    for _ in range(64):
        text = _dumps(content)
        excess = len(text.encode()) - limit
        if excess <= 0:
            return text
        holder, name, longest = _longest_string(content)
        if holder is None or len(longest) < 64:
            break
        # Characters are not bytes (escapes, non-ASCII): cut by the string's own bytes per character.
        size = len(_dumps(longest).encode())
        keep = max(0, int((size - excess - 64) * len(longest) / size))
        holder[name] = longest[:keep] + f"… [{len(longest) - keep} characters cut]"
    return _dumps({"tool": content.get("tool"), "truncated": True, "note": "Too large to keep."})


def _longest_string(value):
    best = (None, None, "")
    pending = [value]
    while pending:
        item = pending.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for name, child in pairs:
            if isinstance(child, str):
                if len(child) > len(best[2]):
                    best = (item, name, child)
            elif isinstance(child, (dict, list)):
                pending.append(child)
    return best


def message_text(content):
    """A person's queued message as text for Claude (stored JSON text)."""
    value = json.loads(content)
    return value if isinstance(value, str) else _dumps(value)


def steering(contents):
    """The TEXT that hands every queued message to Claude, oldest first."""
    return STEERING_PREFIX + "\n\n" + "\n\n".join(message_text(c) for c in contents)


def instructions(system_prompt):
    return f"{INSTRUCTIONS_PREFIX}\n\n{system_prompt}"


# --- answers -----------------------------------------------------------------------------------

def allow():
    return {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}}


def deny(reason):
    return {"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                                   "decision": {"behavior": "deny", "message": reason or DEFAULT_DENY}}}


def block(text):
    """Stop answered so that Claude continues with `text`."""
    return {"decision": "block", "reason": text}


def context(event, text):
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


USAGE_HOOK_TIMEOUT = 30  # seconds: report-usage reads the transcript and makes a few requests
# Claude Code may not have written a turn's last answer to the transcript yet when Stop runs: the next
# Stop reports it, and SessionEnd reports the whole session.
USAGE_EVENTS = ("Stop", "SessionEnd")


def settings(url, approval_wait_seconds, hold_wait_seconds, approvals=True, usage_command=None):
    """The `{"hooks": ...}` block for Claude Code's settings.json: an http hook on every event, and with
    `usage_command` a `command` hook on Stop and SessionEnd beside it (`client.py report-usage`: it reads the transcript
    on the agent's machine, which the server never does)."""
    endpoint = url.rstrip("/") + "/v1/hooks/claude"
    hooks = {}
    for event in EVENTS:
        if event == "PermissionRequest" and not approvals:
            continue
        wait = {"PermissionRequest": approval_wait_seconds, "Stop": hold_wait_seconds}.get(event)
        hook = {"type": "http", "url": endpoint,
                "headers": {"Authorization": "Bearer $SWITCHBOARD_TOKEN"},
                "allowedEnvVars": ["SWITCHBOARD_TOKEN"],
                # The server ends its own waits: Claude Code must not give up first.
                "timeout": int(wait) + 60 if wait is not None else 10}
        group = {"hooks": [hook]}
        if event in USAGE_EVENTS and usage_command:
            group["hooks"].append({"type": "command", "command": usage_command, "timeout": USAGE_HOOK_TIMEOUT})
        if event in TOOL_EVENTS:
            group = {"matcher": "*", **group}
        hooks[event] = [group]
    return {"hooks": hooks}
