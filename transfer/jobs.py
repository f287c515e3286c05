"""Writes of the import workflow: an uploaded export becomes the uploader's conversations, in the background.

The transfer app's writes, named like services elsewhere (`<entity>_<verb>`,
typed, returning objects).

1. `import_job_create` checks the upload (size, file type) and that its
   owner has no other import waiting or running (one per user, also a
   partial unique constraint on `ImportJob`), saves it as a pending
   `ImportJob` under MEDIA_ROOT and, once the transaction commits, wakes the
   worker (`start_import_thread`).
2. The worker is one daemon thread per process (`import_worker_start`),
   started when the process serves the site (`TransferConfig.ready` calls
   `import_worker_start_if_serving`: daphne, or runserver's serving
   process; never tests or other management commands) and woken when a job
   is created. It takes jobs one at a time, oldest first, so imports from
   many users queue instead of multiplying memory, and looks for work every
   `POLL_S` seconds even when nobody wakes it.
3. Taking a job (`import_job_claim`) is one `UPDATE ... WHERE` on the row:
   a pending job, or a running one whose `heartbeat_at` is older than
   `ORPHANED_AFTER` (its process died), becomes running with `attempts`
   one higher. `attempts` is the claim: every later write of the worker
   checks it, so a worker whose job was taken over stops instead of
   writing twice. A job taken up more than `MAX_ATTEMPTS` times fails.
4. Running a job (`import_job_run` for one job, or the worker) reads the
   file with `importers.parse_export` (the whole document is in memory, as
   JSON needs) and calls `conversations_import` on the conversations not yet
   imported: whole conversations are rendered a batch at a time (at most
   `BATCH_ROWS` rows and `BATCH_CHARS` characters of text; a larger
   conversation is a batch alone) and each batch is written in its own
   short transaction, which also moves the job's `done` and `heartbeat_at`
   on. So `done` is exactly how many of the file's conversations, in file
   order, are in the database: a job taken up again after a restart skips
   them (the file's order is its stable key) and never imports one twice or
   half of one. Only one batch's rendered messages are held at a time.
5. When the job ends, done or failed, it says so and its upload is deleted.
   A failure says how many conversations were imported before it; a job
   whose upload is gone fails saying so. `import_uploads_sweep` (run when
   the worker starts) deletes the uploads of ended jobs that a crash left
   behind.

A job nobody has taken up or heartbeaten for `STALLED_AFTER` (no worker
runs) shows as stopped (`import_job_stalled`); a new upload then fails it
and takes its place.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from attachments.services import attachment_restore
from conversations import serving
from conversations.compiled import InsertMany
from conversations.models import Conversation, Message
from conversations.organizing import folder_get_or_create
from conversations.rows import rows_update
from conversations.services import message_content_html, storable_text, title_from_text
from personas.models import Persona
from personas.selectors import persona_list_active
from transfer.importers import (
    ImportFormatError,
    ParsedAttachment,
    ParsedConversation,
    parse_export,
    zip_member_reader,
)
from transfer.models import ImportJob

logger = logging.getLogger(__name__)

ALLOWED_EXTENSIONS = (".json", ".zip")
UNFINISHED = (ImportJob.Status.PENDING, ImportJob.Status.RUNNING)
# The most rows (conversations and messages) and characters of message text written per transaction
# (the rendered HTML about doubles the text), whole conversations only: a larger conversation is a batch
# of its own. About 10 ms of SQLite writes on a small machine, and all that one batch holds in memory.
BATCH_ROWS = 100
BATCH_CHARS = 125_000
# Seconds between heartbeats while one large batch is being rendered (a batch written is one too).
HEARTBEAT_EVERY_S = 5.0
# A running job without a heartbeat for this long was left by a process that died: it is taken up again.
ORPHANED_AFTER = timedelta(seconds=60)
# A job taken up more often than this (each time its process died under it) fails instead.
MAX_ATTEMPTS = 3
# Seconds the idle worker waits for a wake-up before looking for pending and orphaned jobs itself.
POLL_S = 30.0
# An unfinished job without a sign of life for this long has no worker: pages show it as stopped.
STALLED_AFTER = timedelta(hours=1)


class ClaimLost(Exception):
    """Another worker took the job over (this one was presumed dead); this one must stop writing."""


def import_job_create(*, owner: User, upload: UploadedFile) -> ImportJob:
    """Save `upload` as `owner`'s pending import job; the worker is woken after commit.

    A stalled unfinished job of `owner` (`import_job_stalled`) is failed and
    replaced; any other unfinished one refuses the upload, which is then not
    stored.

    Raises:
        ValidationError: the file is empty (code "empty"), larger than
            `settings.CHAT_IMPORT_MAX_BYTES` bytes ("too_large"), not a .json
            or .zip file ("file_type"), or `owner` already has an import
            waiting or running ("unfinished").
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
        for unfinished in ImportJob.objects.select_for_update().filter(owner=owner, status__in=UNFINISHED):
            if not import_job_stalled(unfinished):
                raise _unfinished_refusal()
            _job_stalled_fail(unfinished)
        # The upload is stored by the INSERT's pre_save, so only once the checks passed.
        job = ImportJob(owner=owner, source=upload, filename=filename[:255], size_bytes=upload.size)
        try:
            with transaction.atomic():
                job.save()
        except IntegrityError:
            # Another upload of the same user got in between (the constraint): drop the stored copy.
            if job.source.name:
                job.source.storage.delete(job.source.name)
            raise _unfinished_refusal() from None
        # Looked up at commit time, so tests can put their own starter in its place.
        transaction.on_commit(lambda: start_import_thread(job.pk))
    return job


def import_job_stalled(job: ImportJob) -> bool:
    """Return whether `job` is unfinished with no sign of life for `STALLED_AFTER`: no worker takes it up."""
    if job.status not in UNFINISHED:
        return False
    last_sign = job.heartbeat_at or job.created_at
    return last_sign < timezone.now() - STALLED_AFTER


def import_job_claim(*, job_id: int | None = None) -> ImportJob | None:
    """Take up job `job_id`, or else the oldest job waiting to run; return it running, or None.

    A job can be taken up when it is pending, or running with a heartbeat
    (or, lacking one, a creation time) older than `ORPHANED_AFTER`. Taking
    it sets it running, `heartbeat_at` to now and `attempts` one higher, in
    one UPDATE that checks `attempts` did not change since it was read: of
    two workers, one gets the job.
    """
    now = timezone.now()
    claimable = _claimable(now)
    candidates = ImportJob.objects.filter(claimable)
    if job_id is not None:
        candidates = candidates.filter(pk=job_id)
    for pk, attempts in candidates.order_by("created_at", "pk").values_list("pk", "attempts")[:5]:
        taken = ImportJob.objects.filter(claimable, pk=pk, attempts=attempts).update(
            status=ImportJob.Status.RUNNING, heartbeat_at=now, attempts=attempts + 1
        )
        if taken:
            return ImportJob.objects.select_related("owner").get(pk=pk)
    return None


def _claimable(now: datetime) -> Q:
    orphaned_before = now - ORPHANED_AFTER
    return Q(status=ImportJob.Status.PENDING) | Q(
        Q(heartbeat_at__lt=orphaned_before) | Q(heartbeat_at__isnull=True, created_at__lt=orphaned_before),
        status=ImportJob.Status.RUNNING,
    )


def import_job_next_id() -> int | None:
    """Return the id of the oldest job `import_job_claim` would take up now, without taking it; None if none."""
    return (
        ImportJob.objects.filter(_claimable(timezone.now()))
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)
        .first()
    )


def import_job_run(*, job_id: int) -> ImportJob:
    """Take up job `job_id` (see `import_job_claim`) and import its file; return the job as it ended.

    A job that cannot be taken up (done, failed, or running with a fresh
    heartbeat) is returned unchanged. Otherwise the job's `format`, `total`,
    `done` (conversations imported), `notes`, `error_text` and `finished_at`
    tell the outcome, and its upload is deleted.
    """
    job = import_job_claim(job_id=job_id)
    if job is None:
        return ImportJob.objects.select_related("owner").get(pk=job_id)
    return import_job_process(job)


def import_job_process(job: ImportJob) -> ImportJob:
    """Import the file of `job`, just taken up by `import_job_claim`; return the job as it ended.

    Resumes after the `job.done` conversations already imported. Ends the job
    done or failed, with its upload deleted, except when another worker took
    it over (`ClaimLost`, logged): then the job is left to that worker.
    """
    if job.total and job.done >= job.total:  # Its process died between the last batch and the end.
        return _job_end(job, ImportJob.Status.DONE)
    if job.attempts > MAX_ATTEMPTS:
        return _job_end(
            job,
            ImportJob.Status.FAILED,
            ngettext(
                "The import was cut off %(count)d time by a restart and was given up. %(imported)s",
                "The import was cut off %(count)d times by a restart and was given up. %(imported)s",
                job.attempts - 1,
            )
            % {"count": job.attempts - 1, "imported": _imported_sentence(job)},
        )
    if not job.source.name or not job.source.storage.exists(job.source.name):
        return _job_end(
            job,
            ImportJob.Status.FAILED,
            _("The uploaded file is no longer on the server, so the import could not go on. %(imported)s")
            % {"imported": _imported_sentence(job)},
        )
    try:
        data = _read_source(job)
        parsed = parse_export(data, max_bytes=settings.CHAT_IMPORT_MAX_BYTES)
        job.format, job.total, job.notes = parsed.format, len(parsed.conversations), "\n".join(parsed.notes)
        _job_write(job, format=job.format, total=job.total, notes=job.notes, heartbeat_at=timezone.now())
        already = job.done

        def on_batch(imported: int) -> None:
            job.done = already + imported
            _job_write(job, done=job.done, heartbeat_at=timezone.now())

        def file_refused(note: str) -> None:
            job.notes = f"{job.notes}\n{note}".strip()
            _job_write(job, notes=job.notes)

        conversations_import(
            owner=job.owner,
            conversations=parsed.conversations[already:],
            on_batch=on_batch,
            heartbeat=lambda: _job_write(job, heartbeat_at=timezone.now()),
            files=zip_member_reader(data, max_bytes=settings.CHAT_IMPORT_MAX_BYTES),
            on_file_refused=file_refused,
        )
    except ClaimLost:
        logger.warning("Import job %s was taken over by another worker; this one stops", job.public_id)
        return job
    except ImportFormatError as error:
        # Raised by parsing, before any write: this attempt imported nothing.
        return _job_end(
            job,
            ImportJob.Status.FAILED,
            _("%(reason)s Nothing was imported.") % {"reason": error}
            if not job.done
            else f"{error} {_imported_sentence(job)}",
        )
    except Exception:
        logger.exception("Import job %s failed", job.public_id)
        # `done` counts the batches committed: the failed batch was rolled back whole.
        job.done = ImportJob.objects.filter(pk=job.pk).values_list("done", flat=True).get()
        if not job.done:
            reason = _("The import failed unexpectedly and nothing was imported. Try again later.")
        else:
            reason = _("The import failed unexpectedly. %(imported)s") % {"imported": _imported_sentence(job)}
        return _job_end(job, ImportJob.Status.FAILED, reason)
    return _job_end(job, ImportJob.Status.DONE)


def import_uploads_sweep() -> int:
    """Delete the uploads that ended jobs still name (a crash between a job's end and the deletion); return how many."""
    swept = 0
    ended = ImportJob.objects.exclude(status__in=UNFINISHED).exclude(source="")
    for job in ended.only("pk", "source"):
        job.source.storage.delete(job.source.name)
        ImportJob.objects.filter(pk=job.pk).update(source="")
        swept += 1
    return swept


def conversations_import(
    *,
    owner: User,
    conversations: Sequence[ParsedConversation],
    on_batch: Callable[[int], object] | None = None,
    heartbeat: Callable[[], object] | None = None,
    files: Callable[[str], bytes | None] | None = None,
    on_file_refused: Callable[[str], object] | None = None,
) -> int:
    """Create `owner`'s copies of `conversations`, a short transaction per batch; return how many were created.

    Attachments listed with messages are restored from `files` (a reader of the
    uploaded ZIP's members, `importers.zip_member_reader`) after their batch
    commits, checked as uploads are (`attachments.services.attachment_restore`);
    one that is missing or refused is reported to `on_file_refused` with a note.

    Each conversation gets the active persona whose slug it names, if any
    (else none), its title marked as set by the user (or one taken from its
    first question), its times, archived and pinned state, its temperature, its folder (the
    owner's folder of that name, made if missing), and its messages as one
    shown path: each message's parent is the one before.

    Batches are whole conversations, in order, of at most `BATCH_ROWS` rows
    (a conversation and its messages) and `BATCH_CHARS` characters of
    message text; a larger conversation is a batch of its own. A batch's replies get their HTML rendered before its
    transaction, and only one batch is held at a time. Inside the
    transaction, before its rows are written, `on_batch(n)` is called with
    the number of conversations imported once it commits, so a count it
    writes commits with the rows it counts (an exception from it rolls the
    batch back). `heartbeat()` is called between transactions about every
    `HEARTBEAT_EVERY_S` seconds while a large batch is rendered.

    Raises:
        Whatever a batch raised: the batches before it stay imported (as
        `on_batch` last reported), none of its own rows are.
    """
    slugs = {parsed.persona_slug for parsed in conversations if parsed.persona_slug}
    personas = (
        {persona.slug: persona for persona in persona_list_active(user=owner).filter(slug__in=slugs)} if slugs else {}
    )
    # Folders by name: the owner's own folder of that name if they have one, else a new one.
    folder_names = sorted({parsed.folder for parsed in conversations if parsed.folder})
    folders = {name: folder_get_or_create(owner=owner, name=name) for name in folder_names}
    now = timezone.now()
    last_beat = time.monotonic()

    def tick() -> None:
        nonlocal last_beat
        if heartbeat is not None and time.monotonic() - last_beat >= HEARTBEAT_EVERY_S:
            heartbeat()
            last_beat = time.monotonic()

    imported = 0
    batch: list[_Prepared] = []
    rows = chars = 0
    for parsed in conversations:
        size = 1 + len(parsed.messages)
        text_size = sum(len(message.content) for message in parsed.messages)
        if batch and (rows + size > BATCH_ROWS or chars + text_size > BATCH_CHARS):
            imported += _batch_write(batch, on_batch, imported + len(batch))
            _files_restore(owner, batch, files, on_file_refused)
            last_beat = time.monotonic()
            batch, rows, chars = [], 0, 0
        prepared = _prepare(owner, parsed, personas.get(parsed.persona_slug), now, tick)
        prepared.conversation.folder = folders.get(parsed.folder)
        prepared.conversation.pinned_at = now if parsed.pinned else None
        batch.append(prepared)
        rows += size
        chars += text_size
    if batch:
        imported += _batch_write(batch, on_batch, imported + len(batch))
        _files_restore(owner, batch, files, on_file_refused)
    return imported


def _files_restore(
    owner: User,
    batch: list[_Prepared],
    files: Callable[[str], bytes | None] | None,
    on_file_refused: Callable[[str], object] | None,
) -> None:
    """Store the files listed with the messages of a committed batch, each checked as an upload is."""
    for item in batch:
        for message, listed in item.attachments:
            for parsed in listed:
                data = files(parsed.file) if files is not None else None
                try:
                    if data is None:
                        raise ValidationError(_("it is not in the uploaded file"))
                    attachment_restore(owner=owner, message_id=message.pk, name=parsed.name, data=data)
                except ValidationError as exc:
                    if on_file_refused is not None:
                        on_file_refused(
                            _("“%(title)s”: the file %(name)s was not imported: %(reason)s")
                            % {"title": item.conversation.title, "name": parsed.name, "reason": " ".join(exc.messages)}
                        )


def _batch_write(batch: list[_Prepared], on_batch: Callable[[int], object] | None, done: int) -> int:
    """Write `batch` in one transaction; return its number of conversations.

    The rows' values are prepared before the transaction begins, so it holds
    the database's writer (all of it, on SQLite) for the statements alone:
    the conversations' INSERT, the messages' INSERT (each compiled once per
    row count, `compiled.InsertMany`) and one prepared UPDATE of the
    messages' parents, whose keys the INSERT gives. Preparing inside took
    two thirds of a transaction's time, and other users' writes waited for
    it (bench/README.md, the twenty-first round).
    """
    conversations = _conversations_insert.prepare([item.conversation for item in batch])
    messages = _messages_insert.prepare([message for item in batch for message in item.messages])
    with transaction.atomic():
        if on_batch is not None:
            on_batch(done)  # First: on PostgreSQL it locks the job's row, which a takeover waits for.
        _conversations_insert.insert(conversations)
        _messages_insert.insert(messages)
        links: list[tuple[int, int]] = []
        for item in batch:
            for parent, message in itertools.pairwise(item.messages):
                message.parent_id = parent.pk
                links.append((message.pk, parent.pk))
        rows_update(Message, ["parent"], links)
    return len(batch)


# The inserts of an import's batches, with the times the export gives (not the time of the insert).
_conversations_insert = InsertMany(Conversation, as_set=("created_at", "updated_at"))
_messages_insert = InsertMany(Message, as_set=("created_at",))


@dataclass(slots=True)
class _Prepared:
    """An unsaved conversation and its unsaved messages, in order, their times set."""

    conversation: Conversation
    messages: list[Message]
    # The files listed with each message that has some, restored after the batch commits.
    attachments: list[tuple[Message, tuple[ParsedAttachment, ...]]] = field(default_factory=list)


def _prepare(
    owner: User, parsed: ParsedConversation, persona: Persona | None, now: datetime, tick: Callable[[], None]
) -> _Prepared:
    message_times = [message.created for message in parsed.messages if message.created is not None]
    created = parsed.created or (min(message_times) if message_times else now)
    updated = parsed.updated or (max(message_times) if message_times else created)
    title = parsed.title or next(
        (title_from_text(message.content) for message in parsed.messages if message.role == Message.Role.USER), ""
    )
    conversation = Conversation(
        owner=owner,
        persona=persona,
        created_at=created,
        updated_at=updated,
        title=storable_text(title),
        title_source=Conversation.TitleSource.USER,
        archived=parsed.archived,
        temperature=parsed.temperature,
    )
    messages = []
    attachments = []
    for index, message in enumerate(parsed.messages):
        tick()
        greeting = index == 0 and message.role == Message.Role.ASSISTANT  # Answers nothing: nobody asked it.
        row = Message(
            conversation=conversation,
            is_current=True,
            # The importer's own history: theirs to count, as a conversation of theirs always was.
            asked_by=None if greeting else owner,
            role=message.role,
            content=storable_text(message.content),
            # As the site stores them: user messages as typed (math as MathML), others as rendered Markdown.
            content_html=message_content_html(role=message.role, content=storable_text(message.content)),
            status=message.status,
            error_text=message.error_text,
            model_id=message.model_id,
            finish_reason=message.finish_reason,
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            tokens_estimated=message.tokens_estimated,
            created_at=message.created or created,
        )
        messages.append(row)
        if message.attachments:
            attachments.append((row, message.attachments))
    return _Prepared(conversation, messages, attachments)


def _read_source(job: ImportJob) -> bytes:
    limit = settings.CHAT_IMPORT_MAX_BYTES
    with job.source.open("rb") as source:
        data = source.read(limit + 1)
    if len(data) > limit:
        raise ImportFormatError(
            _("The file is larger than %(limit)s, the most the site imports.") % {"limit": filesizeformat(limit)}
        )
    return data


def _job_write(job: ImportJob, **fields: object) -> None:
    """Set `fields` of `job` if this worker still holds it (same `attempts`, still running).

    Raises:
        ClaimLost: another worker took the job up since.
    """
    held = ImportJob.objects.filter(pk=job.pk, attempts=job.attempts, status=ImportJob.Status.RUNNING)
    if not held.update(**fields):
        raise ClaimLost(job.pk)


def _job_end(job: ImportJob, status: str, error_text: str = "") -> ImportJob:
    """Mark `job` ended with `status` (and `error_text`), then delete its upload; return the job.

    The upload's name is blanked only after the file is deleted, so a crash
    in between leaves it to `import_uploads_sweep`. A job taken over by
    another worker is left alone.
    """
    job.status, job.error_text, job.finished_at = status, error_text, timezone.now()
    try:
        _job_write(job, status=status, error_text=error_text, done=job.done, finished_at=job.finished_at)
    except ClaimLost:
        logger.warning("Import job %s was taken over by another worker; this one stops", job.public_id)
        return job
    _upload_delete(job)
    return job


def _job_stalled_fail(job: ImportJob) -> None:
    """Fail `job`, which no worker has taken up for `STALLED_AFTER`; its upload is deleted after commit."""
    job.status, job.finished_at = ImportJob.Status.FAILED, timezone.now()
    job.error_text = _("This import stopped when the site restarted and was not resumed. %(imported)s") % {
        "imported": _imported_sentence(job)
    }
    ImportJob.objects.filter(pk=job.pk).update(
        status=job.status, finished_at=job.finished_at, error_text=job.error_text
    )
    transaction.on_commit(lambda: _upload_delete(job))


def _upload_delete(job: ImportJob) -> None:
    if job.source.name:
        job.source.delete(save=False)
    job.source.name = ""
    ImportJob.objects.filter(pk=job.pk).update(source="")


def _imported_sentence(job: ImportJob) -> str:
    if not job.done:
        return _("Nothing was imported.")
    if job.total:
        return ngettext(
            "%(done)d of %(total)d conversation was imported; the others were not.",
            "%(done)d of %(total)d conversations were imported; the others were not.",
            job.total,
        ) % {"done": job.done, "total": job.total}
    return ngettext("%(done)d conversation was imported.", "%(done)d conversations were imported.", job.done) % {
        "done": job.done
    }


def _unfinished_refusal() -> ValidationError:
    return ValidationError(
        _("You already have an import waiting or running. Wait until it has finished, then upload the next file."),
        code="unfinished",
    )


# The worker


class _Worker(threading.Thread):
    """The process's import worker: runs one job at a time until stopped, each in a child process.

    The child (`manage.py import_job_run ID`, a fresh interpreter on the
    same settings and environment) takes the job up and imports it; its CPU
    runs on another core and the memory of parsing the file goes back to the
    system when it ends. With CHAT_IMPORT_SUBPROCESS off (the tests), the
    job runs in this thread.
    """

    def __init__(self) -> None:
        super().__init__(name="import-worker", daemon=True)
        self.wake = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            self._sweep()
            while not self.stopping.is_set():
                if not self._run_one():
                    self.wake.wait(POLL_S)
                    self.wake.clear()
        finally:
            connection.close()  # The thread's own connection; nothing else would close it.

    def _run_one(self) -> bool:
        """Run the next job that can be taken up; return whether there was one and it ran without a crash."""
        try:
            job_id = import_job_next_id()
            if job_id is None:
                return False
            if not settings.CHAT_IMPORT_SUBPROCESS:
                import_job_run(job_id=job_id)
                return True
            # A process of its own: rendering thousands of messages in a thread of the serving process
            # held the interpreter lock the event loop needs, and other users' writes waited up to half a
            # second (bench/load.py, import scenario). The child takes the job up itself (import_job_run).
            command = [sys.executable, str(settings.BASE_DIR / "manage.py"), "import_job_run", str(job_id)]
            exit_code = _child_run(command)
            if exit_code != 0:
                logger.error("The import process of job %s exited with %s; retrying in %s s", job_id, exit_code, POLL_S)
                return False
            return True
        except Exception:
            logger.exception("The import worker failed; it tries again in %s s", POLL_S)
            return False
        finally:
            connection.close()

    def _sweep(self) -> None:
        try:
            import_uploads_sweep()
        except Exception:
            logger.exception("Deleting the uploads of ended import jobs failed")


def _child_run(command: list[str]) -> int:
    """Run `command` in the project's folder, `CHAT_IMPORT_NICENESS` below this process's CPU priority; return its
    exit code.

    On a small machine the child competes with the server for the cores. Its
    priority is lowered as soon as it is started, from here, so that its own
    start (the interpreter, Django's setup: 2.6 s of a core on the bench
    machine) yields too; lowered by the child's command, it ran at the
    server's priority (bench/README.md, the twenty-first round).
    """
    niceness = min(os.getpriority(os.PRIO_PROCESS, 0) + settings.CHAT_IMPORT_NICENESS, 19)
    child = subprocess.Popen(command, cwd=settings.BASE_DIR)
    if settings.CHAT_IMPORT_NICENESS:
        with contextlib.suppress(ProcessLookupError):  # It has ended already.
            os.setpriority(os.PRIO_PROCESS, child.pid, niceness)
    return child.wait()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def import_worker_start() -> threading.Thread:
    """Start this process's import worker thread unless it runs, wake it, and return it."""
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = _Worker()
            _worker.start()
        _worker.wake.set()
        return _worker


def import_worker_stop(*, timeout_s: float = 30.0) -> None:
    """Stop the worker after the job it is running (if any) and wait up to `timeout_s` seconds for it."""
    global _worker
    with _worker_lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.stopping.set()
        worker.wake.set()
        worker.join(timeout_s)


def start_import_thread(job_id: int) -> threading.Thread:
    """Wake the import worker (starting it if needed) for new job `job_id`; return the worker thread.

    Called by `import_job_create` after commit; tests replace it to keep
    imports from running, or to run them inline.
    """
    return import_worker_start()


def import_worker_start_if_serving(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> threading.Thread | None:
    """Start the worker when this process serves the site (`conversations.serving.serves_site`); return it, or None.

    Tests, `migrate`, the shell and other commands start no thread. `argv`
    and `environ` default to the process's own.
    """
    return import_worker_start() if serving.serves_site(argv, environ) else None
