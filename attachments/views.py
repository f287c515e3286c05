"""Uploading a file from the composer, and the owner-only download of an attachment."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from attachments import selectors, services
from attachments.models import MB, Attachment


def attachment_json(attachment: Attachment) -> dict:
    """Return what the composer shows of an upload: id, name, kind, size, its URL, and whether its text was cut."""
    return {
        "id": str(attachment.public_id),
        "name": attachment.name,
        "kind": attachment.kind,
        "content_type": attachment.content_type,
        "size_bytes": attachment.size_bytes,
        "url": reverse("attachments:attachment-file", kwargs={"public_id": attachment.public_id}),
        "text_cut": attachment.text_cut,
        "chars": len(attachment.text),
        "pages": attachment.pages,
    }


@login_required
@require_POST
def attachment_upload(request: HttpRequest) -> JsonResponse:
    """Take one file (multipart field "file") from the composer and answer JSON.

    201 with `attachment_json`; 400 or 413 with {"error": message} when it is
    refused (`services.attachment_upload`). A request whose declared length
    is over the limit is refused before its body is read.
    """
    policy = selectors.policy_get()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > policy.max_file_mb * MB + 64 * 1024:
        message = _("This file is larger than the limit of %(limit)d MB.") % {"limit": policy.max_file_mb}
        return JsonResponse({"error": message}, status=413)
    upload = request.FILES.get("file")
    if upload is None:
        return JsonResponse({"error": _("Choose a file to attach.")}, status=400)
    try:
        attachment = services.attachment_upload(owner=request.user, upload=upload)  # type: ignore[arg-type]
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages)}, status=413 if exc.code == "too_large" else 400)
    return JsonResponse(attachment_json(attachment), status=201)


@login_required
@require_GET
def attachment_file(request: HttpRequest, public_id) -> FileResponse:
    """Send an attachment's file to its owner only; anyone else, like a missing one, gets 404.

    Images are shown inline; documents are downloaded (Content-Disposition:
    attachment). The type is the one found in the content, with nosniff and a
    sandboxing Content-Security-Policy, so no upload runs as a page of the site.
    """
    try:
        attachment = selectors.attachment_get_for_user(user=request.user, public_id=public_id)  # type: ignore[arg-type]
        handle = attachment.file.open("rb")
    except (Attachment.DoesNotExist, FileNotFoundError):
        raise Http404 from None
    response = FileResponse(
        handle,
        content_type=attachment.content_type,
        as_attachment=not attachment.is_image,
        filename=attachment.name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_POST
def attachment_remove(request: HttpRequest, public_id) -> HttpResponse:
    """Delete an upload the person removed from the composer before sending: 204, or 404 if not theirs."""
    try:
        attachment = selectors.attachment_get_for_user(user=request.user, public_id=public_id)  # type: ignore[arg-type]
    except Attachment.DoesNotExist:
        raise Http404 from None
    try:
        services.attachment_delete_unsent(attachment=attachment)
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=409, content_type="text/plain; charset=utf-8")
    return HttpResponse(status=204)
