"""Read exported conversations from the two formats the site imports, into plain dataclasses.

Pure functions, no database: `parse_export` takes the bytes of an upload
and returns `ParsedExport`, or raises `ImportFormatError` with a message a
person can act on. What is read:

- this site's JSON export (docs/export-format.md: ``"format":
  "chatsite.conversations"``, version 1), as a .json file or inside the
  "export all" ZIP;
- ChatGPT's ``conversations.json`` ("Export data" in ChatGPT's settings), as
  the file or inside the ZIP ChatGPT mails. Its shape, as ChatGPT writes it
  (not a published specification): a list of conversations, each with
  ``title``, ``create_time`` / ``update_time`` (Unix seconds, may be null),
  ``mapping`` ``{node id: {"id", "message", "parent", "children"}}`` and
  ``current_node``, the leaf of the branch shown last. A message has
  ``author.role``, ``create_time`` and ``content`` with a ``content_type``
  ("text" with ``parts`` strings, "multimodal_text" with strings and
  asset dicts, "code", "execution_output", ...).

The format is detected from the content, not from the file name.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from transfer import export

ROLES = frozenset({"system", "user", "assistant"})
STATUSES = frozenset({"complete", "stopped", "error", "interrupted"})
# A reply exported while it was still streaming is imported as interrupted:
# nothing will ever finish it.
STREAMING = "streaming"
ZIP_MEMBER = "conversations.json"
TITLE_MAX_CHARS = 200
# Folder names as conversations.Folder.name holds them (pure module: no model import).
FOLDER_MAX_CHARS = 100
MODEL_ID_MAX_CHARS = 200
FINISH_REASON_MAX_CHARS = 32


class ImportFormatError(ValueError):
    """The upload is not an export the site can read; the message says why and where."""


@dataclass(frozen=True)
class ParsedAttachment:
    """A file listed with a message of this site's export: its name and where the ZIP holds it."""

    name: str
    file: str


@dataclass(frozen=True)
class ParsedMessage:
    """One message on the imported path. Times are aware datetimes in UTC, or None when the file has none."""

    role: str
    content: str
    created: datetime | None = None
    status: str = "complete"
    model_id: str = ""
    finish_reason: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # The exporting site counted (some of) the tokens itself: its upstream reported no usage, or part of it.
    tokens_estimated: bool = False
    error_text: str = ""
    attachments: tuple[ParsedAttachment, ...] = ()


@dataclass(frozen=True)
class ParsedConversation:
    """One conversation with its messages oldest first; `persona_slug` is "" when it had none."""

    title: str
    created: datetime | None = None
    updated: datetime | None = None
    archived: bool = False
    # Sidebar organisation (absent from older files and from ChatGPT's): pinned, and the folder's name or "".
    pinned: bool = False
    folder: str = ""
    # The chat's own temperature (0-2), None for the persona's (and in older files).
    temperature: float | None = None
    persona_slug: str = ""
    messages: tuple[ParsedMessage, ...] = ()


@dataclass(frozen=True)
class ParsedExport:
    """What an upload holds: its format ("site" or "chatgpt"), its conversations, and notes on what was left out."""

    format: str
    conversations: tuple[ParsedConversation, ...]
    notes: tuple[str, ...] = field(default=())


def parse_export(data: bytes, *, max_bytes: int) -> ParsedExport:
    """Parse an upload: this site's export or ChatGPT's conversations.json, plain or zipped.

    Args:
        data: the uploaded file's bytes (JSON in UTF-8, or a ZIP holding
            ``conversations.json``).
        max_bytes: the most bytes ``conversations.json`` may unzip to.

    Raises:
        ImportFormatError: not JSON, neither format, or a field missing or of
            the wrong type (the message names the conversation and message).
    """
    if data[:4] == b"PK\x03\x04":
        data = _unzip_conversations(data, max_bytes=max_bytes)
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ImportFormatError(
            _("The file is not valid JSON. Upload conversations.json as exported, or the ZIP that holds it.")
        ) from None
    if isinstance(document, dict) and document.get("format") == export.FORMAT:
        return parse_site_export(document)
    if isinstance(document, list) and (
        not document or any(isinstance(item, dict) and "mapping" in item for item in document)
    ):
        return parse_chatgpt_export(document)
    raise ImportFormatError(
        _(
            "This file is neither an export of this site nor ChatGPT's conversations.json. "
            "Upload one of those, unchanged."
        )
    )


def parse_site_export(document: dict[str, Any]) -> ParsedExport:
    """Read this site's export document (already decoded JSON) of format version 1.

    Raises:
        ImportFormatError: another version, or a missing or mistyped field.
    """
    version = document.get("version")
    if version != export.VERSION:
        raise ImportFormatError(
            _("This export has format version %(version)s; this site reads version %(supported)s.")
            % {"version": version, "supported": export.VERSION}
        )
    records = document.get("conversations")
    if not isinstance(records, list):
        raise ImportFormatError(_("The export has no list of conversations."))
    conversations = []
    notes = []
    for number, record in enumerate(records, 1):
        where = _("Conversation %(number)d") % {"number": number}
        if not isinstance(record, dict):
            raise ImportFormatError(_("%(where)s is not an object.") % {"where": where})
        messages = record.get("messages")
        if not isinstance(messages, list):
            raise ImportFormatError(_("%(where)s has no list of messages.") % {"where": where})
        persona = record.get("persona")
        if persona is not None and not isinstance(persona, dict):
            raise ImportFormatError(_("%(where)s: persona must be an object or null.") % {"where": where})
        parsed_messages = []
        interrupted = 0
        for index, message in enumerate(messages, 1):
            message_where = _("%(where)s, message %(number)d") % {"where": where, "number": index}
            parsed = _site_message(message, message_where)
            if parsed.status == STREAMING:
                parsed = replace(parsed, status="interrupted")
                interrupted += 1
            parsed_messages.append(parsed)
        title = _text(record, "title", where)
        if interrupted:
            notes.append(
                ngettext(
                    "“%(title)s”: %(count)d reply was still streaming when exported; imported as interrupted.",
                    "“%(title)s”: %(count)d replies were still streaming when exported; imported as interrupted.",
                    interrupted,
                )
                % {"title": title or where, "count": interrupted}
            )
        conversations.append(
            ParsedConversation(
                title=title[:TITLE_MAX_CHARS],
                created=_iso_time(record, "created", where),
                updated=_iso_time(record, "updated", where),
                archived=_bool(record, "archived", where),
                pinned=_bool(record, "pinned", where),
                folder=" ".join(_text(record, "folder", where).split())[:FOLDER_MAX_CHARS],
                temperature=_temperature(record, where),
                persona_slug=_text(persona, "slug", where) if persona else "",
                messages=tuple(parsed_messages),
            )
        )
    return ParsedExport(format="site", conversations=tuple(conversations), notes=tuple(notes))


def parse_chatgpt_export(document: list[Any]) -> ParsedExport:
    """Read ChatGPT's conversations.json (already decoded JSON): each conversation's shown branch.

    The branch is followed from ``current_node`` back to the root through
    ``parent`` links, then reversed. Messages of the roles system, user and
    assistant are kept with their text; a part that is not text (an image,
    code, execution output, ...) becomes a visible note such as
    "[image not imported]" in the message, and a line in the notes. Tool
    messages are left out and counted in the notes. Empty messages (ChatGPT's
    hidden system prompt, placeholders) are skipped.

    Raises:
        ImportFormatError: a conversation without mapping or current node,
            a broken parent chain, or a mistyped field.
    """
    conversations = []
    notes = []
    for number, record in enumerate(document, 1):
        where = _("Conversation %(number)d") % {"number": number}
        if not isinstance(record, dict):
            raise ImportFormatError(_("%(where)s is not an object.") % {"where": where})
        title = record.get("title")
        if not isinstance(title, str):
            title = ""
        mapping = record.get("mapping")
        current = record.get("current_node")
        if not isinstance(mapping, dict) or not mapping:
            raise ImportFormatError(_("%(where)s has no message mapping.") % {"where": where})
        # JSON object keys are strings: a current_node in the mapping is one.
        if current not in mapping or not isinstance(current, str):
            raise ImportFormatError(
                _("%(where)s: current_node does not name a message of its mapping.") % {"where": where}
            )
        left_out: Counter[str] = Counter()
        messages = []
        for node in _branch(mapping, current, where):
            message = node.get("message")
            if message is None:
                continue
            if not isinstance(message, dict):
                raise ImportFormatError(_("%(where)s: a message is not an object.") % {"where": where})
            author = message.get("author")
            role = author.get("role") if isinstance(author, dict) else None
            if role == "tool":
                left_out["tool message"] += 1
                continue
            if role not in ROLES:
                left_out[f"{role} message"] += 1
                continue
            content, missing = _chatgpt_content(message.get("content"), where)
            left_out.update(missing)
            if not content.strip():
                continue
            metadata = message.get("metadata")
            if not isinstance(metadata, dict):
                metadata = {}
            model_slug = metadata.get("model_slug")
            messages.append(
                ParsedMessage(
                    role=role,
                    content=content,
                    created=_epoch_time(message.get("create_time"), where),
                    model_id=model_slug[:MODEL_ID_MAX_CHARS] if isinstance(model_slug, str) else "",
                )
            )
        created = _epoch_time(record.get("create_time"), where)
        conversations.append(
            ParsedConversation(
                title=_clean(title)[:TITLE_MAX_CHARS],
                created=created,
                updated=_epoch_time(record.get("update_time"), where),
                archived=record.get("is_archived") is True,
                messages=tuple(_times_in_order(messages, start=created)),
            )
        )
        if left_out:
            summary = ", ".join(f"{count} × {kind}" for kind, count in sorted(left_out.items()))
            notes.append(_("“%(title)s”: not imported: %(summary)s.") % {"title": title or where, "summary": summary})
    return ParsedExport(format="chatgpt", conversations=tuple(conversations), notes=tuple(notes))


def _unzip_conversations(data: bytes, *, max_bytes: int) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [name for name in archive.namelist() if name.rsplit("/", 1)[-1] == ZIP_MEMBER]
            if not names:
                raise ImportFormatError(_("The ZIP file holds no conversations.json."))
            # The shallowest one: an export's own, not one nested in a folder.
            with archive.open(min(names, key=lambda name: name.count("/"))) as member:
                content = member.read(max_bytes + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError):
        raise ImportFormatError(_("The ZIP file is damaged or uses a compression the site cannot read.")) from None
    if len(content) > max_bytes:
        raise ImportFormatError(
            _("conversations.json in the ZIP file unpacks to more than %(limit)d bytes.") % {"limit": max_bytes}
        )
    return content


def _branch(mapping: dict[str, Any], leaf: str, where: str) -> list[dict[str, Any]]:
    """Return the nodes from the root to `leaf`, following parent links up and reversing."""
    path = []
    seen = set()
    node_id: Any = leaf
    while node_id is not None:
        if node_id in seen:
            raise ImportFormatError(_("%(where)s: its messages' parent links form a loop.") % {"where": where})
        node = mapping.get(node_id)
        if not isinstance(node, dict):
            raise ImportFormatError(_("%(where)s: a message's parent is missing from the mapping.") % {"where": where})
        seen.add(node_id)
        path.append(node)
        node_id = node.get("parent")
    path.reverse()
    return path


def _chatgpt_content(content: Any, where: str) -> tuple[str, list[str]]:
    """Return a message's text, with a visible note for each part that is not text, and those parts' kinds."""
    if not isinstance(content, dict):
        raise ImportFormatError(_("%(where)s: a message has no content object.") % {"where": where})
    content_type = content.get("content_type")
    parts = content.get("parts")
    if content_type in ("text", "multimodal_text") and isinstance(parts, list):
        pieces = []
        missing = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(_clean(part))
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                pieces.append(_clean(part["text"]))  # e.g. an audio transcription
            else:
                kind = _part_kind(part)
                pieces.append(f"[{kind} not imported]")
                missing.append(kind)
        return "\n".join(piece for piece in pieces if piece), missing
    kind = str(content_type or "content").replace("_", " ")
    return f"[{kind} not imported]", [kind]


def _part_kind(part: Any) -> str:
    part_type = part.get("content_type", "") if isinstance(part, dict) else ""
    if "image" in part_type:
        return "image"
    if "audio" in part_type:
        return "audio"
    if "video" in part_type:
        return "video"
    return part_type.replace("_", " ") or "attachment"


def _times_in_order(messages: list[ParsedMessage], *, start: datetime | None) -> list[ParsedMessage]:
    """Fill missing times from the message before and keep times from going backwards.

    The page shows messages by time; ChatGPT leaves some times null.
    """
    result = []
    previous = start
    for message in messages:
        created = message.created
        if created is None or (previous is not None and created < previous):
            created = previous
        result.append(replace(message, created=created))
        previous = created
    return result


def _site_message(message: Any, where: str) -> ParsedMessage:
    if not isinstance(message, dict):
        raise ImportFormatError(_("%(where)s is not an object.") % {"where": where})
    role = message.get("role")
    if role not in ROLES:
        raise ImportFormatError(_("%(where)s: role must be one of system, user, assistant.") % {"where": where})
    if not isinstance(message.get("content"), str):
        raise ImportFormatError(_("%(where)s: content must be text.") % {"where": where})
    status = message.get("status", "complete")
    if status not in STATUSES and status != STREAMING:
        raise ImportFormatError(
            _("%(where)s: status must be one of complete, stopped, error, interrupted.") % {"where": where}
        )
    return ParsedMessage(
        role=role,
        content=_clean(message["content"]),
        created=_iso_time(message, "created", where),
        status=status,
        model_id=_text(message, "model", where)[:MODEL_ID_MAX_CHARS],
        finish_reason=_text(message, "finish_reason", where)[:FINISH_REASON_MAX_CHARS],
        prompt_tokens=_tokens(message, "prompt_tokens", where),
        completion_tokens=_tokens(message, "completion_tokens", where),
        tokens_estimated=_bool(message, "tokens_estimated", where),
        error_text=_text(message, "error", where),
        attachments=_attachments(message, where),
    )


def _attachments(message: dict[str, Any], where: str) -> tuple[ParsedAttachment, ...]:
    listed = message.get("attachments", [])
    if not isinstance(listed, list) or not all(
        isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("file"), str)
        for item in listed
    ):
        raise ImportFormatError(
            _("%(where)s: attachments must be a list of objects with a name and a file.") % {"where": where}
        )
    return tuple(ParsedAttachment(name=item["name"], file=item["file"]) for item in listed)


def zip_member_reader(data: bytes, *, max_bytes: int) -> Callable[[str], bytes | None]:
    """Return a function reading one member of the ZIP `data` by name: its bytes, or None when it is
    missing, unreadable or larger than `max_bytes` (a file of the "export all" ZIP, `export.attachment_file_name`).

    For any other upload (not a ZIP) the function always returns None.
    """

    def read(name: str) -> bytes | None:
        if data[:4] != b"PK\x03\x04":
            return None
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open(name) as member:
                content = member.read(max_bytes + 1)
        except (KeyError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError):
            return None
        return content if len(content) <= max_bytes else None

    return read


def _text(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImportFormatError(_("%(where)s: %(field)s must be text.") % {"where": where, "field": key})
    return _clean(value)


def _bool(record: dict[str, Any], key: str, where: str) -> bool:
    value = record.get(key, False)
    if not isinstance(value, bool):
        raise ImportFormatError(_("%(where)s: %(field)s must be true or false.") % {"where": where, "field": key})
    return value


def _tokens(record: dict[str, Any], key: str, where: str) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ImportFormatError(
            _("%(where)s: %(field)s must be a whole number of tokens or null.") % {"where": where, "field": key}
        )
    return value


def _temperature(record: dict[str, Any], where: str) -> float | None:
    value = record.get("temperature")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise ImportFormatError(_("%(where)s: temperature must be a number from 0 to 2, or null.") % {"where": where})
    return float(value)


def _iso_time(record: dict[str, Any], key: str, where: str) -> datetime | None:
    value = record.get(key)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ImportFormatError(
            _("%(where)s: %(field)s must be an ISO 8601 time such as 2025-01-31T09:15:02Z.")
            % {"where": where, "field": key}
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _epoch_time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImportFormatError(_("%(where)s: a time is not a number of seconds.") % {"where": where})
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ImportFormatError(_("%(where)s: a time is out of range.") % {"where": where}) from None


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; nothing a person wrote needs one.
    return text.replace("\x00", "")
