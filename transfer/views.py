"""Taking history out and bringing it in: downloads of one conversation or all, the "Your data" page, imports."""

from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from attachments.selectors import attachment_chunks, attachment_list_for_export
from conversations import selectors
from conversations.views.shortcuts import AuthenticatedHttpRequest, get_owned_or_404, render_page
from transfer import export, jobs
from transfer import selectors as transfer_selectors
from transfer.forms import ImportUploadForm

CONTENT_TYPES = {
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}
# Multipart framing around the file (boundaries, part headers, the CSRF
# field) is far below this; a body larger than the limit plus this is refused unread.
MULTIPART_SLACK_BYTES = 64 * 1024


@never_cache
@login_required
@require_GET
def conversation_export(request: AuthenticatedHttpRequest, public_id, fmt: str) -> HttpResponse:
    """Download one conversation's shown path as JSON (`fmt` "json"), Markdown ("md") or text ("txt")."""
    if fmt not in CONTENT_TYPES:
        raise Http404
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    messages = list(selectors.message_list_for_conversation(conversation=conversation))
    if fmt == "json":
        body = export.conversation_json(conversation, messages, exported_at=timezone.now())
    elif fmt == "md":
        body = export.conversation_markdown(conversation, messages).encode()
    else:
        body = export.conversation_text(conversation, messages).encode()
    response = HttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = _attachment(
        export.conversation_filename(conversation, fmt),
        export.conversation_filename(conversation, fmt, ascii_only=True),
    )
    return response


@never_cache
@login_required
@require_GET
def export_all(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    """Stream a ZIP of all the user's conversations: conversations.json, one Markdown file each, their files.

    Rows are read in chunks as the archive goes out, twice (once for the
    JSON, once for the Markdown files, which need fewer columns), so memory
    stays flat whatever the history's size.
    """
    user = request.user

    def pairs(fields: tuple[str, ...]) -> Iterator:
        conversations = selectors.conversation_iter_for_export(user=user)
        return selectors.message_iter_for_export(conversations=conversations, fields=fields)

    exported_at = timezone.now()
    sent = attachment_list_for_export(user=user)
    listed: dict[Any, list[dict[str, Any]]] = {}
    for attachment in sent:
        listed.setdefault(attachment.message_public_id, []).append(export.attachment_record(attachment))  # type: ignore[attr-defined]
    files = (
        export.ZipEntry(
            export.attachment_file_name(a.public_id, a.extension), a.created_at, attachment_chunks(a), large=True
        )
        for a in sent
    )
    chunks = export.archive_chunks(
        json_pairs=pairs(selectors.EXPORT_MESSAGE_FIELDS),
        markdown_pairs=pairs(export.MARKDOWN_MESSAGE_FIELDS),
        exported_at=exported_at,
        attachments=listed,
        files=files,
    )
    response = StreamingHttpResponse(_for_server(request, chunks), content_type="application/zip")
    response["Content-Disposition"] = _attachment(f"chatsite-export-{exported_at:%Y-%m-%d}.zip")
    return response


@login_required
@require_GET
def data_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show "Your data": export everything, import a file, and the user's import jobs with their progress."""
    return _data_page(request, ImportUploadForm())


# CSRF is checked by _import_create, once the size limit is in place: the check
# reads the body (Django docs, "Modifying upload handlers on the fly").
@csrf_exempt
@login_required
@require_POST
def import_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Take an uploaded export, start importing it in the background and go to "Your data".

    A body over the size limit is refused before it is parsed; a file that
    passes the limit while it is parsed is dropped there, none of it stored.
    """
    limit = settings.CHAT_IMPORT_MAX_BYTES
    try:
        content_length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        content_length = 0
    if content_length > limit + MULTIPART_SLACK_BYTES:
        return _data_page(request, ImportUploadForm(), status=413, errors=[_too_large(limit)])
    handler = UploadLimitHandler(request, max_bytes=limit)
    # A new list rather than insert(): once the body is parsed the handlers are an immutable list. Either
    # way it is too late then: the setter raises AttributeError, as insert() would.
    request.upload_handlers = [handler, *request.upload_handlers]
    return _import_create(request, handler)


@csrf_protect
def _import_create(request: AuthenticatedHttpRequest, handler: "UploadLimitHandler") -> HttpResponse:
    files = request.FILES  # The body is parsed here at the latest, through `handler`.
    if handler.exceeded:
        return _data_page(request, ImportUploadForm(), status=413, errors=[_too_large(handler.max_bytes)])
    form = ImportUploadForm(request.POST, files)
    if form.is_valid():
        try:
            jobs.import_job_create(owner=request.user, upload=form.cleaned_data["file"])
        except ValidationError as error:
            form.add_error("file", error)
        else:
            return redirect("transfer:data")
    return _data_page(request, form, status=400)


@never_cache
@login_required
@require_GET
def import_detail(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Show one import job's progress; the htmx fragment polls itself every second until the job ends."""
    job = get_owned_or_404(transfer_selectors.import_job_get_for_user, user=request.user, public_id=public_id)
    job.stalled = jobs.import_job_stalled(job)
    return render_page(request, "transfer/import_detail.html", "transfer/partials/import_job.html", {"job": job})


class UploadLimitHandler(FileUploadHandler):
    """Stop an upload as soon as its files pass `max_bytes` in all; what was received is discarded.

    Put first in `request.upload_handlers`, it passes data on to Django's
    handlers until the limit, then raises StopUpload: the parser closes (and
    so deletes) the partial file and reads the rest of the body away.
    """

    def __init__(self, request: HttpRequest, *, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.received_bytes = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received_bytes += len(raw_data)
        if self.received_bytes > self.max_bytes:
            self.exceeded = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def _data_page(
    request: AuthenticatedHttpRequest, form: ImportUploadForm, status: int = 200, errors: list[str] | None = None
) -> HttpResponse:
    import_jobs = list(transfer_selectors.import_job_list_for_user(user=request.user))
    for job in import_jobs:
        job.stalled = jobs.import_job_stalled(job)
    context = {
        "form": form,
        "import_errors": errors if errors is not None else [*form.non_field_errors(), *form["file"].errors],
        "import_jobs": import_jobs,
        "import_max_bytes": settings.CHAT_IMPORT_MAX_BYTES,
    }
    return render_page(request, "transfer/data.html", "transfer/partials/data.html", context, status=status)


def _too_large(limit: int) -> str:
    return _("The file is larger than %(limit)s, the most the site imports.") % {"limit": filesizeformat(limit)}


def _attachment(filename: str, ascii_filename: str | None = None) -> str:
    """Return a Content-Disposition value that downloads as `filename`.

    Django's `content_disposition_header` writes ``filename="..."`` for an
    ASCII name and only ``filename*=utf-8''...`` (RFC 5987) otherwise; here a
    non-ASCII name gets both, the ASCII fallback first, as RFC 6266 section
    4.3 recommends for clients that do not read ``filename*``.
    """
    header = _attachment_header(ascii_filename or filename)
    if ascii_filename and filename != ascii_filename:
        header += "; " + _attachment_header(filename).split("; ", 1)[1]
    return header


def _attachment_header(filename: str) -> str:
    header = content_disposition_header(True, filename)
    # Django returns None only for an inline disposition without a filename; its stub does not say so.
    assert header is not None, "an attachment always gets a Content-Disposition header"
    return header


def _for_server(request: HttpRequest, chunks: Generator[bytes, None, None]) -> Iterator[bytes] | AsyncIterator[bytes]:
    """Return `chunks` as the server can stream them.

    Under ASGI (daphne) Django reads a synchronous iterator whole into a list
    before sending it (StreamingHttpResponse.__aiter__), so it gets an
    asynchronous one that pulls each piece in the request's sync thread,
    where the database cursor lives. Under WSGI (and the test client) the
    iterator goes as it is.
    """
    if isinstance(request, ASGIRequest):
        return _pulled_in_sync_thread(chunks)
    return chunks


async def _pulled_in_sync_thread(chunks: Generator[bytes, None, None]) -> AsyncIterator[bytes]:
    pull = sync_to_async(_next_or_none, thread_sensitive=True)
    try:
        while (chunk := await pull(chunks)) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()


def _next_or_none(chunks: Generator[bytes, None, None]) -> bytes | None:
    return next(chunks, None)
