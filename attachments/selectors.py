"""Reads of attachments, each scoped to the user who asks, and the site's attachment limits."""

import base64
from collections.abc import Iterable, Iterator
from uuid import UUID

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import F, Max

from attachments.inspect import Limits
from attachments.models import Attachment, AttachmentPolicy


def policy_get() -> AttachmentPolicy:
    """Return the site's attachment limits: the admin's row, or the defaults when none was saved (no write)."""
    return AttachmentPolicy.objects.order_by("pk").first() or AttachmentPolicy()


def policy_limits(policy: AttachmentPolicy) -> Limits:
    """Return what `attachments.inspect` needs of `policy`."""
    return Limits(
        images=policy.images_allowed,
        pdf=policy.pdf_allowed,
        docx=policy.docx_allowed,
        text=policy.text_allowed,
        max_document_chars=policy.max_document_chars,
        max_pdf_pages=policy.max_pdf_pages,
        max_image_side_px=policy.max_image_side_px,
    )


def attachment_get_for_user(*, user: User, public_id: UUID | str) -> Attachment:
    """Return attachment `public_id` if `user` owns it.

    Raises:
        Attachment.DoesNotExist: no such attachment, or another user's (callers answer 404).
    """
    if not getattr(user, "is_authenticated", False):
        raise Attachment.DoesNotExist
    try:
        return Attachment.objects.get(owner=user, public_id=public_id)
    except (ValueError, TypeError, ValidationError):
        raise Attachment.DoesNotExist from None


def attachments_unattached_for_user(*, user: User, public_ids: Iterable[str]) -> list[Attachment]:
    """Return `user`'s uploads among `public_ids` that no message has taken yet, in upload order.

    Ids that are not UUIDs, another user's, or already sent are left out.
    """
    ids = []
    for public_id in public_ids:
        try:
            ids.append(UUID(str(public_id)))
        except ValueError:
            continue
    return list(Attachment.objects.filter(owner=user, message__isnull=True, public_id__in=ids).order_by("pk"))


def user_storage_bytes(*, user: User) -> int:
    """Return the bytes `user`'s attachments take up in storage, each stored file once (edits share files)."""
    per_file = Attachment.objects.filter(owner=user).order_by().values("file").annotate(size=Max("size_bytes"))
    return sum(row["size"] for row in per_file)


def attachment_data_url(attachment: Attachment) -> str:
    """Return the image as a data URL ("data:image/png;base64,..."), the form OpenAI's image_url part takes.

    Source: OpenAI API reference, Chat Completions, content part "image_url"
    ("Either a URL of the image or the base64 encoded image data").
    """
    with attachment.file.open("rb") as f:
        data = f.read()
    return f"data:{attachment.content_type};base64,{base64.b64encode(data).decode('ascii')}"


def attachment_list_for_export(*, user: User) -> list[Attachment]:
    """Return `user`'s sent attachments, oldest first, without their text, each with `message_public_id`.

    One query; for the "export all" ZIP, which lists them with their messages and holds their files.
    """
    return list(
        Attachment.objects.filter(owner=user, message__isnull=False)
        .defer("text")
        .annotate(message_public_id=F("message__public_id"))
        .order_by("pk")
    )


def attachment_chunks(attachment: Attachment) -> Iterator[bytes]:
    """Yield the attachment's file from storage in pieces (Django's File.chunks, 64 KiB)."""
    with attachment.file.open("rb") as f:
        yield from f.chunks()
