"""Turn conversations and their messages into files a person can keep: JSON, Markdown, plain text, ZIP.

Pure functions: they take rows (or iterables of rows) that selectors have
read, with each conversation's persona and its model loaded, and return
text, bytes or an iterator of bytes. No query happens here.

The JSON schema is documented in docs/export-format.md; `FORMAT` and
`VERSION` name it. Timestamps are ISO 8601 in UTC with microseconds
(``2025-01-31T09:15:02.123456Z``), so an import gets them back exactly.

The Markdown and text files are documents to download, never pages: the
site does not render them, and model or user text goes into them as it was
written. Their labels ("User", "Assistant", "Persona: ...") are in the
active language (the exporting page's), for the person who reads them; an
import reads only conversations.json, whose keys never change.
"""

from __future__ import annotations

import functools
import itertools
import json
import json.encoder
import re
import unicodedata
import zipfile
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from isal import isal_zlib

FORMAT = "chatsite.conversations"
VERSION = 1

# Characters of the title kept in a file name; with the date, the short id and
# the extension a name stays well under the 255 bytes file systems allow.
FILENAME_TITLE_MAX_CHARS = 60
FILENAME_FALLBACK = "conversation"
# A streamed ZIP goes out in pieces of about this size (bytes).
ZIP_CHUNK_BYTES = 64 * 1024
# ISA-L's level 1 (of 0 to 3): on chat text, the size zlib's fastest level
# (1) gives, in a third of its time (bench/README.md, export_all.py); zlib's
# level 1 took a third of its default's (6) time for about a quarter more
# bytes. Exporting is CPU work on a server that also streams replies; the
# download is cheap next to it.
ZIP_COMPRESSLEVEL = 1

# The message attributes the Markdown and text documents read (a query for them alone reads less).
MARKDOWN_MESSAGE_FIELDS = ("role", "status", "content", "error_text")

ROLE_LABELS = {"system": gettext_lazy("System"), "user": gettext_lazy("User"), "assistant": gettext_lazy("Assistant")}
# A reply's status in its heading when it did not complete (the same words as conversations.Message.Status).
STATUS_LABELS = {
    "streaming": gettext_lazy("streaming"),
    "stopped": gettext_lazy("stopped"),
    "error": gettext_lazy("error"),
    "interrupted": gettext_lazy("interrupted"),
}
# Path separators, quotes, and the characters Windows refuses in file names.
_UNSAFE_IN_FILENAME = re.compile(r"[\\/:*?\"<>|'`\u2018\u2019\u201c\u201d]")
_DASHES = re.compile(r"[\s-]+")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # The earliest time a ZIP entry can carry (APPNOTE 4.4.6).
# json's C string encoders (`json.dumps` uses them): ensure_ascii on, and off.
_encode_json_ascii = json.encoder.encode_basestring_ascii
_encode_json = json.encoder.encode_basestring


def iso_utc(moment: datetime | None) -> str | None:
    """Return `moment` as ISO 8601 in UTC with a ``Z`` suffix, or None for None."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:  # Django's SQLite rows carry this very tzinfo (USE_TZ); others are converted.
        moment = moment.astimezone(UTC)
    return moment.isoformat()[:-6] + "Z"  # "+00:00" is the last six characters of UTC's isoformat.


def conversation_record(conversation: Any, messages: Iterable[Any]) -> dict[str, Any]:
    """Return one conversation as the JSON-ready dict of the export schema (version 1).

    Args:
        conversation: a Conversation with `persona`, `persona.model` and
            `folder` loaded (or no persona, no folder).
        messages: its current path, oldest first: Messages, or rows with
            their attributes (`selectors.EXPORT_MESSAGE_FIELDS`).

    Returns:
        ``{"id", "title", "created", "updated", "archived", "pinned", "folder", "temperature", "persona",
        "messages": [{"id", "role", "content", "created", "model", "status",
        "finish_reason", "prompt_tokens", "completion_tokens",
        "tokens_estimated", "error"}]}``; ids are public ids, "persona" a
        snapshot or None, token counts ints or None; "group_chat": true
        after "temperature" only for a user's part of an IM group chat.
    """
    return {
        **_conversation_fields(conversation),
        "messages": [
            {
                "id": str(message.public_id),
                "role": message.role,
                "content": message.content,
                "created": iso_utc(message.created_at),
                "model": message.model_id,
                "status": message.status,
                "finish_reason": message.finish_reason,
                "prompt_tokens": message.prompt_tokens,
                "completion_tokens": message.completion_tokens,
                "tokens_estimated": message.tokens_estimated,
                "error": message.error_text,
            }
            for message in messages
        ],
    }


def conversation_record_json(
    conversation: Any, messages: Iterable[Any], attachments: Mapping[Any, list[dict[str, Any]]] | None = None
) -> str:
    """Return `conversation_record(conversation, messages)` as JSON text, written the way json.dumps writes it.

    The same text as ``json.dumps(conversation_record(...), ensure_ascii=False)``
    (tests hold them equal) in about 60 % of the time: each message is one
    format string, no dict, and ASCII text goes through json's ASCII string
    encoder, about three times faster than the other on it (`_json_str`).
    `attachments`: `attachment_record`s by message public id; a message with
    some gets an "attachments" list (the "export all" ZIP holds their files).
    """
    head = json.dumps(_conversation_fields(conversation), ensure_ascii=False)
    found = attachments or {}
    texts = (_message_json(message, found.get(message.public_id)) for message in messages)
    return head[:-1] + ', "messages": [' + ", ".join(texts) + "]}"


def attachment_file_name(public_id: Any, extension: str) -> str:
    """Return where the "export all" ZIP holds an attachment's file: ``files/<id><extension>``."""
    return f"files/{public_id}{extension}"


def attachment_record(attachment: Any) -> dict[str, Any]:
    """Return one attachment of a message as the export lists it: id, name, kind, type, size, its file in the ZIP."""
    return {
        "id": str(attachment.public_id),
        "name": attachment.name,
        "kind": attachment.kind,
        "content_type": attachment.content_type,
        "size_bytes": attachment.size_bytes,
        "file": attachment_file_name(attachment.public_id, attachment.extension),
    }


def json_document_chunks(records: Iterable[dict[str, Any]], *, exported_at: datetime) -> Iterator[bytes]:
    """Yield the export document in UTF-8 pieces, one conversation record at a time.

    The document is ``{"format", "version", "exported_at", "conversations": [...]}``
    with one record per line, so its size never has to fit in memory.
    """
    return _json_document_chunks((json.dumps(record, ensure_ascii=False) for record in records), exported_at)


def conversation_json(conversation: Any, messages: Iterable[Any], *, exported_at: datetime) -> bytes:
    """Return the export document holding this one conversation, as UTF-8 JSON."""
    return b"".join(_json_document_chunks([conversation_record_json(conversation, messages)], exported_at))


def conversation_markdown(conversation: Any, messages: Iterable[Any], labels: _Labels | None = None) -> str:
    """Return the conversation as a Markdown document.

    ``# Title``, a list of metadata, then one ``### User`` / ``### Assistant``
    / ``### System`` section per message with its text as written (a reply's
    Markdown stays Markdown). A reply that did not complete says so in its
    heading, and an error follows its text as a quote. The words are in the
    active language, or `labels`' (`_labels`, for many documents at once).
    """
    labels = labels or _labels()
    title = _one_line(conversation.title) or labels.untitled
    lines = [f"# {title}", ""]
    lines += [f"- {label}: {value}" for label, value in _metadata(conversation, labels)]
    for message in messages:
        lines += ["", f"### {labels.heading(message)}", "", message.content or f"_{labels.empty}_"]
        if message.error_text:
            lines += ["", f"> {labels.error} {_one_line(message.error_text)}"]
    return "\n".join(lines) + "\n"


def conversation_text(conversation: Any, messages: Iterable[Any]) -> str:
    """Return the conversation as plain text: title, metadata, then each message under its role."""
    labels = _labels()
    title = _one_line(conversation.title) or labels.untitled
    lines = [title, "=" * min(len(title), 80), ""]
    lines += [f"{label}: {value}" for label, value in _metadata(conversation, labels)]
    for message in messages:
        lines += ["", f"--- {labels.heading(message)} ---", message.content]
        if message.error_text:
            lines.append(f"[{labels.error} {_one_line(message.error_text)}]")
    return "\n".join(lines) + "\n"


def safe_filename_part(title: str, *, max_chars: int = FILENAME_TITLE_MAX_CHARS) -> str:
    """Return `title` made safe as part of a file name, or "conversation" when nothing is left.

    Path separators, quotes, the characters Windows refuses and control or
    format characters become dashes; runs of spaces and dashes become one
    dash; the result is cut to `max_chars` characters and loses leading and
    trailing dots, dashes and underscores (no hidden files, no ``..``).
    """
    text = unicodedata.normalize("NFC", title)
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    text = _DASHES.sub("-", _UNSAFE_IN_FILENAME.sub(" ", text).strip())
    text = text[:max_chars].strip(".-_")
    return text or FILENAME_FALLBACK


def conversation_filename(conversation: Any, extension: str, *, ascii_only: bool = False) -> str:
    """Return ``<date>-<safe title>-<short id>.<extension>`` for a conversation.

    The date is the day it was created (UTC), the short id the first 8 hex
    digits of its public id. With `ascii_only`, accents are dropped and other
    non-ASCII letters left out: the fallback name for old HTTP clients (RFC 6266, 4.3).
    """
    title = conversation.title
    if ascii_only:
        title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    created = conversation.created_at.astimezone(UTC)
    return f"{created:%Y-%m-%d}-{safe_filename_part(title)}-{conversation.public_id.hex[:8]}.{extension}"


@dataclass(frozen=True)
class ZipEntry:
    """One file of a streamed ZIP: its path, time, content in pieces, and whether it may pass 4 GiB."""

    name: str
    modified: datetime
    chunks: Iterable[bytes]
    large: bool = False


def zip_stream(entries: Iterable[ZipEntry], *, chunk_bytes: int = ZIP_CHUNK_BYTES) -> Generator[bytes, None, None]:
    """Yield a deflated ZIP archive of `entries` in pieces of about `chunk_bytes`.

    Entries and their content are pulled lazily, so memory holds one piece
    of content and the archive's central directory (a few hundred bytes per
    entry), whatever the archive's size. The standard library writes to a
    stream it cannot seek as the ZIP format allows: sizes and CRC follow each
    entry in a data descriptor, ZIP64 where an entry is `large` (PKWARE
    APPNOTE.TXT 4.3.9; Python's zipfile docs, ``ZipFile.open(mode="w")``).
    """
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=_zip_time(entry.modified))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16  # rw-r--r-- when unzipped on Unix
            with archive.open(info, "w", force_zip64=entry.large) as member:
                member._compressor = _deflater()  # type: ignore[attr-defined]
                for chunk in entry.chunks:
                    member.write(chunk)
                    if pipe.size >= chunk_bytes:
                        yield pipe.take()
            if pipe.size >= chunk_bytes:
                yield pipe.take()
    yield pipe.take()


def archive_chunks(
    *,
    json_pairs: Iterable[tuple[Any, list[Any]]],
    markdown_pairs: Iterable[tuple[Any, list[Any]]],
    exported_at: datetime,
    attachments: Mapping[Any, list[dict[str, Any]]] | None = None,
    files: Iterable[ZipEntry] = (),
) -> Generator[bytes, None, None]:
    """Return the "export all" ZIP's bytes, lazily: conversations.json, a Markdown file per conversation, the files.

    The Markdown files' labels are in the language active at this call (the
    page's), however late the chunks are read.

    Args:
        json_pairs: (conversation, current-path messages) for every
            conversation, read lazily for conversations.json; messages are
            Messages or rows with `selectors.EXPORT_MESSAGE_FIELDS`.
        markdown_pairs: the same pairs read a second time, lazily, for
            ``conversations/<date>-<title>-<short id>.md``; rows need only
            `MARKDOWN_MESSAGE_FIELDS`. Two passes keep one conversation in
            memory at a time; the JSON must be one entry.
        exported_at: the time written into conversations.json.
        attachments: `attachment_record`s by message public id, listed with their messages.
        files: the attachments' files, at their records' "file" paths.
    """
    labels = _labels()  # Now: the chunks are read later, when the request's language may be gone.
    records = (conversation_record_json(conversation, messages, attachments) for conversation, messages in json_pairs)
    json_entry = ZipEntry("conversations.json", exported_at, _json_document_chunks(records, exported_at), large=True)
    markdown_entries = (
        ZipEntry(
            f"conversations/{conversation_filename(conversation, 'md')}",
            conversation.updated_at,
            [conversation_markdown(conversation, messages, labels).encode()],
        )
        for conversation, messages in markdown_pairs
    )
    return zip_stream(itertools.chain([json_entry], markdown_entries, files))


def _deflater() -> Any:
    """Return a raw deflate compressor (no zlib header: a ZIP entry's data, APPNOTE 4.4.5) from ISA-L.

    zipfile has no hook for its compressor: an entry opened for writing
    calls ``_compressor.compress`` on each piece and ``_compressor.flush`` at
    its end, the methods of zlib's compressor objects, which isal_zlib's
    have too (isal_zlib mirrors zlib's module, with levels 0 to 3). Deflate
    was most of an export's time with zlib's.
    """
    return isal_zlib.compressobj(ZIP_COMPRESSLEVEL, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)


class _Pipe:
    """A write-only, unseekable file for zipfile: bytes pile up until `take` empties it."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def size(self) -> int:
        return len(self._buffer)

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # zipfile never closes a file it was given; here for the writable-file protocol it is typed with.

    def take(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    # ZIP keeps a local time without zone; the archive uses UTC throughout.
    stamp = moment.astimezone(UTC).timetuple()[:6]
    return max(stamp, _ZIP_EPOCH)


def _is_group_part(conversation: Any) -> bool:
    """Whether `conversation` is the exporting user's part of an IM group chat (`export_part_of`)."""
    return getattr(conversation, "export_part_of", None) is not None


def _conversation_fields(conversation: Any) -> dict[str, Any]:
    """The record of `conversation` without its messages, in the schema's order ("messages" comes last)."""
    persona = conversation.persona
    group_chat = {"group_chat": True} if _is_group_part(conversation) else {}
    return {
        "id": str(conversation.public_id),
        "title": conversation.title,
        "created": iso_utc(conversation.created_at),
        "updated": iso_utc(conversation.updated_at),
        "archived": conversation.archived,
        "pinned": conversation.pinned_at is not None,
        "folder": conversation.folder.name if conversation.folder_id else None,
        "temperature": conversation.temperature,
        **group_chat,
        "persona": None
        if persona is None
        else {
            "name": persona.name,
            "slug": persona.slug,
            "avatar": persona.avatar,
            "system_prompt": persona.system_prompt,
            "model": persona.model.model_id,
            "greeting": persona.greeting,
        },
    }


def _message_json(message: Any, attachments: list[dict[str, Any]] | None = None) -> str:
    """One message of `conversation_record` as json.dumps writes it (default separators, ensure_ascii off)."""
    if attachments:
        record = json.loads(_message_json(message))
        return json.dumps({**record, "attachments": attachments}, ensure_ascii=False)
    return (
        f'{{"id": "{message.public_id}", "role": {_json_word(message.role)}, '
        f'"content": {_json_str(message.content)}, "created": {_json_time(message.created_at)}, '
        f'"model": {_json_word(message.model_id)}, "status": {_json_word(message.status)}, '
        f'"finish_reason": {_json_word(message.finish_reason)}, '
        f'"prompt_tokens": {_json_int(message.prompt_tokens)}, '
        f'"completion_tokens": {_json_int(message.completion_tokens)}, '
        f'"tokens_estimated": {"true" if message.tokens_estimated else "false"}, '
        f'"error": {_json_str(message.error_text)}}}'
    )


def _json_int(number: int | None) -> str:
    return "null" if number is None else str(int(number))


def _json_time(moment: datetime | None) -> str:
    return "null" if moment is None else f'"{iso_utc(moment)}"'


def _json_str(text: str) -> str:
    """Return `text` as a JSON string, exactly as ``json.dumps(text, ensure_ascii=False)`` writes it.

    json's two C string encoders write ASCII text alike, except DEL, which
    only the ASCII one escapes; that one is about three times faster.
    """
    if text.isascii() and "\x7f" not in text:
        return _encode_json_ascii(text)
    return _encode_json(text)


# The same, remembered for the words most messages share (roles, statuses, model ids, finish reasons).
_json_word = functools.lru_cache(maxsize=256)(_json_str)


def _json_document_chunks(record_texts: Iterable[str], exported_at: datetime) -> Iterator[bytes]:
    """Yield the export document around `record_texts` (each a conversation record as JSON text), one per line."""
    head = json.dumps({"format": FORMAT, "version": VERSION, "exported_at": iso_utc(exported_at)})
    yield (head[:-1] + ', "conversations": [').encode()
    separator = "\n"
    for text in record_texts:
        yield (separator + text).encode()
        separator = ",\n"
    yield b"\n]}\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _metadata(conversation: Any, labels: _Labels) -> list[tuple[str, str]]:
    persona = conversation.persona
    rows = []
    if persona is not None:
        rows.append((labels.persona, f"{persona.name} ({persona.slug})"))
        rows.append((labels.model, persona.model.model_id))
    rows.append((labels.created, iso_utc(conversation.created_at) or ""))
    rows.append((labels.updated, iso_utc(conversation.updated_at) or ""))
    if conversation.archived:
        rows.append((labels.archived, labels.yes))
    if conversation.pinned_at is not None:
        rows.append((labels.pinned, labels.yes))
    if conversation.folder_id:
        rows.append((labels.folder, conversation.folder.name))
    if conversation.temperature is not None:
        rows.append((labels.temperature, f"{conversation.temperature:g}"))
    if _is_group_part(conversation):
        rows.append((labels.group_chat, labels.group_chat_part))
    rows.append((labels.conversation, str(conversation.public_id)))
    return rows


@dataclass(frozen=True)
class _Labels:
    """The words of the Markdown and text documents, in one language (`_labels`).

    Translated once per export, not once per conversation: a gettext call
    each, 7,000 in an "export all" of 500 conversations.
    """

    untitled: str
    empty: str
    error: str
    yes: str
    persona: str
    model: str
    created: str
    updated: str
    archived: str
    pinned: str
    folder: str
    temperature: str
    group_chat: str
    group_chat_part: str
    conversation: str
    roles: dict[str, str]
    statuses: dict[str, str]

    def heading(self, message: Any) -> str:
        """Return a message's heading: its role, and its status unless complete."""
        text = self.roles.get(message.role) or message.role.title()
        if message.status != "complete":
            text += f" ({self.statuses.get(message.status, message.status)})"
        return text


def _labels() -> _Labels:
    """Return the documents' words in the active language."""
    return _Labels(
        untitled=_("Untitled conversation"),
        empty=_("(empty)"),
        error=_("Error:"),
        yes=_("yes"),
        persona=_("Persona"),
        model=_("Model"),
        created=_("Created"),
        updated=_("Updated"),
        archived=_("Archived"),
        pinned=_("Pinned"),
        folder=_("Folder"),
        temperature=_("Temperature"),
        group_chat=_("Group chat"),
        group_chat_part=_("only your messages and the replies to them"),
        conversation=_("Conversation"),
        roles={role: str(label) for role, label in ROLE_LABELS.items()},
        statuses={status: str(label) for status, label in STATUS_LABELS.items()},
    )
