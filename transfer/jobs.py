"""Writes of the import workflow: an uploaded export becomes the uploader's conversations, in the background.

The transfer app's writes, named like services elsewhere (`<entity>_<verb>`,
typed, returning objects).

1. `import_job_create` checks the upload (size, file type), saves it as an
   `ImportJob` under MEDIA_ROOT and, once the transaction commits, starts
   `start_import_thread`.
2. The thread runs `import_job_run`: it reads the file with
   `importers.parse_export` and calls `conversations_import`, which renders
   every message first (progress goes to the job every `PROGRESS_EVERY`
   conversations, a few writes in all) and then writes everything in one
   transaction. A malformed file or any failure imports nothing and leaves
   its reason on the job. The uploaded file is deleted when the job ends.

A job whose process stops while it runs (a restart) stays "importing" in
the database; after `STALLED_AFTER` the pages say it stopped and stop
polling (`import_job_stalled`), and the upload can be made again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.db.models import Field, Model
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations import rendering
from conversations.models import Conversation, Message
from conversations.services import storable_text, title_from_text
from personas.models import Persona
from personas.selectors import persona_list_active
from transfer.importers import ImportFormatError, ParsedConversation, parse_export
from transfer.models import ImportJob

logger = logging.getLogger(__name__)

ALLOWED_EXTENSIONS = (".json", ".zip")
# Conversations prepared between two progress writes to the job.
PROGRESS_EVERY = 25
# Rows per INSERT statement of the import.
BULK_BATCH_SIZE = 500
# An unfinished job older than this was cut off by a restart: the largest
# allowed file imports in well under a minute.
STALLED_AFTER = timedelta(hours=1)


def import_job_create(*, owner: User, upload: UploadedFile) -> ImportJob:
    """Save `upload` as `owner`'s pending import job; the import starts in a thread after commit.

    Raises:
        ValidationError: the file is empty, larger than
            `settings.CHAT_IMPORT_MAX_BYTES` bytes, or not a .json or .zip file.
    """
    limit = settings.CHAT_IMPORT_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise ValidationError(
            _("The file is %(size)s; the most the site imports is %(limit)s.")
            % {"size": filesizeformat(upload.size), "limit": filesizeformat(limit)},
            code="too_large",
        )
    if not upload.size:
        raise ValidationError(_("The file is empty."), code="empty")
    filename = os.path.basename(upload.name or "")
    if not filename.lower().endswith(ALLOWED_EXTENSIONS):
        raise ValidationError(
            _("Upload a .json file (conversations.json) or the .zip file of an export."), code="file_type"
        )
    with transaction.atomic():
        job = ImportJob.objects.create(owner=owner, source=upload, filename=filename[:255], size_bytes=upload.size)
        # Looked up at commit time, so tests can put their own starter in its place.
        transaction.on_commit(lambda: start_import_thread(job.pk))
    return job


def import_job_stalled(job: ImportJob) -> bool:
    """Return whether `job` is unfinished but older than `STALLED_AFTER`: its thread died with its process."""
    unfinished = job.status in (ImportJob.Status.PENDING, ImportJob.Status.RUNNING)
    return unfinished and job.created_at < timezone.now() - STALLED_AFTER


def start_import_thread(job_id: int) -> threading.Thread:
    """Run `import_job_run` for job `job_id` in a daemon thread and return the started thread."""
    thread = threading.Thread(target=_run_in_thread, args=(job_id,), name=f"import-job-{job_id}", daemon=True)
    thread.start()
    return thread


def import_job_run(*, job_id: int) -> ImportJob:
    """Import the file of pending job `job_id`; return the job, done or failed.

    Only a pending job is run (a second call returns it unchanged). The job's
    `format`, `total`, `done`, `notes`, `error_text` and `finished_at` tell
    the outcome; nothing is imported unless it is done.
    """
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.PENDING).update(
        status=ImportJob.Status.RUNNING
    )
    job = ImportJob.objects.select_related("owner").get(pk=job_id)
    if not claimed:
        return job
    try:
        parsed = parse_export(_read_source(job), max_bytes=settings.CHAT_IMPORT_MAX_BYTES)
        job.format = parsed.format
        job.total = len(parsed.conversations)
        job.notes = "\n".join(parsed.notes)
        job.save(update_fields=["format", "total", "notes"])
        job.done = conversations_import(
            owner=job.owner,
            conversations=parsed.conversations,
            on_progress=lambda done: ImportJob.objects.filter(pk=job_id).update(done=done),
        )
        job.status = ImportJob.Status.DONE
    except ImportFormatError as error:
        job.status = ImportJob.Status.FAILED
        job.error_text = _("%(reason)s Nothing was imported.") % {"reason": error}
    except Exception:
        logger.exception("Import job %s failed", job.public_id)
        job.status = ImportJob.Status.FAILED
        job.error_text = _("The import failed unexpectedly and nothing was imported. Try again later.")
    if job.status == ImportJob.Status.FAILED:
        job.done = 0
    job.finished_at = timezone.now()
    job.source.delete(save=False)
    job.source = ""
    job.save(update_fields=["status", "done", "error_text", "finished_at", "source"])
    return job


def conversations_import(
    *,
    owner: User,
    conversations: Sequence[ParsedConversation],
    on_progress: Callable[[int], object] | None = None,
) -> int:
    """Create `owner`'s copies of `conversations` in one transaction; return how many were created.

    Each conversation gets the active persona whose slug it names, if any
    (else none), its title marked as set by the user (or one taken from its
    first question), its times, and its messages as one shown path: each
    message's parent is the one before. Replies get their HTML rendered here,
    before the transaction, reporting `on_progress(conversations prepared)`
    every `PROGRESS_EVERY` conversations. The writes are bulk: one INSERT per
    `BULK_BATCH_SIZE` rows, then one prepared UPDATE run for all rows of a table.
    """
    slugs = {parsed.persona_slug for parsed in conversations if parsed.persona_slug}
    personas = {persona.slug: persona for persona in persona_list_active().filter(slug__in=slugs)} if slugs else {}
    now = timezone.now()
    prepared = []
    for done, parsed in enumerate(conversations, 1):
        prepared.append(_prepare(owner, parsed, personas.get(parsed.persona_slug), now))
        if on_progress is not None and done % PROGRESS_EVERY == 0 and done < len(conversations):
            on_progress(done)

    with transaction.atomic():
        Conversation.objects.bulk_create([item.conversation for item in prepared], batch_size=BULK_BATCH_SIZE)
        Message.objects.bulk_create(
            [message for item in prepared for message, _ in item.messages], batch_size=BULK_BATCH_SIZE
        )
        # bulk_create stamps auto_now_add fields with the current time, and a
        # message's parent has no pk before its insert: both are set afterwards.
        _rows_update(
            Conversation,
            ["created_at", "updated_at"],
            [(item.conversation.pk, item.created, item.updated) for item in prepared],
        )
        links: list[tuple[int, int | None, datetime]] = []
        for item in prepared:
            parent_id: int | None = None
            for message, created in item.messages:
                message.parent_id, message.created_at = parent_id, created
                links.append((message.pk, parent_id, created))
                parent_id = message.pk
        _rows_update(Message, ["parent", "created_at"], links)
    return len(prepared)


def _rows_update(model: type[Model], field_names: list[str], rows: list[tuple]) -> None:
    """Set `field_names` of many rows of `model`: `rows` are (pk, value, ...) in the order of the names.

    One prepared UPDATE run for every row (DB-API executemany). Django's
    bulk_update builds a CASE expression per row and field in Python, which
    takes seconds for ten thousand messages, all of it inside the transaction.
    """
    targets = [_concrete_field(model, name) for name in field_names]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column)} = %s" for column, _field in targets)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s"
    params = [
        [field.get_db_prep_value(value, connection) for (_column, field), value in zip(targets, values, strict=True)]
        + [pk]
        for pk, *values in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _concrete_field(model: type[Model], name: str) -> tuple[str, Field]:
    """Return the column and the field `name` of `model`, a field with a column (not the far end of a relation)."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or field.column is None:
        raise ValueError(f"{model.__name__}.{name} has no column of its own")
    return field.column, field


@dataclass(slots=True)
class _Prepared:
    """An unsaved conversation and its unsaved messages, with the times to give them after insert."""

    conversation: Conversation
    created: datetime
    updated: datetime
    messages: list[tuple[Message, datetime]]


def _prepare(owner: User, parsed: ParsedConversation, persona: Persona | None, now: datetime) -> _Prepared:
    message_times = [message.created for message in parsed.messages if message.created is not None]
    created = parsed.created or (min(message_times) if message_times else now)
    updated = parsed.updated or (max(message_times) if message_times else created)
    title = parsed.title or next(
        (title_from_text(message.content) for message in parsed.messages if message.role == Message.Role.USER), ""
    )
    conversation = Conversation(
        owner=owner,
        persona=persona,
        title=storable_text(title),
        title_source=Conversation.TitleSource.USER,
        archived=parsed.archived,
    )
    messages = [
        (
            Message(
                conversation=conversation,
                is_current=True,
                role=message.role,
                content=storable_text(message.content),
                # As the site does: user messages show as text, others as rendered Markdown.
                content_html=rendering.render_markdown(message.content)
                if message.role != Message.Role.USER and message.content
                else "",
                status=message.status,
                error_text=message.error_text,
                model_id=message.model_id,
                finish_reason=message.finish_reason,
                prompt_tokens=message.prompt_tokens,
                completion_tokens=message.completion_tokens,
            ),
            message.created or created,
        )
        for message in parsed.messages
    ]
    return _Prepared(conversation, created, updated, messages)


def _read_source(job: ImportJob) -> bytes:
    limit = settings.CHAT_IMPORT_MAX_BYTES
    with job.source.open("rb") as source:
        data = source.read(limit + 1)
    if len(data) > limit:
        raise ImportFormatError(
            _("The file is larger than %(limit)s, the most the site imports.") % {"limit": filesizeformat(limit)}
        )
    return data


def _run_in_thread(job_id: int) -> None:
    try:
        import_job_run(job_id=job_id)
    finally:
        # The thread opened its own database connection; nothing else will close it.
        connection.close()
