"""Writes of attachments: an upload checked and stored, sent with a message, deleted with its files."""

from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import DEFAULT_DB_ALIAS, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from attachments import inspect, selectors
from attachments.models import ATTACHMENTS_FOLDER, MB, Attachment, AttachmentPolicy


def attachment_upload(*, owner: User, upload: UploadedFile) -> Attachment:
    """Check an uploaded file against the site's limits, keep what the site needs of it, and store it unattached.

    The type is found from the content (`attachments.inspect`), never the
    name or the browser's claim; images are stored encoded again, scaled to
    the policy's longest side; documents as uploaded, with their text.

    Raises:
        ValidationError: too large, over the user's storage, a type not
            accepted, unreadable, or a hostile file (the message says which).
    """
    policy = selectors.policy_get()
    _unsent_sweep(owner=owner)
    size = upload.size or 0
    if size == 0:
        raise ValidationError(_("This file is empty."), code="empty")
    if size > policy.max_file_mb * MB:
        raise ValidationError(
            _("This file is %(size)s; the limit is %(limit)s.")
            % {"size": filesizeformat(size), "limit": filesizeformat(policy.max_file_mb * MB)},
            code="too_large",
        )
    data = upload.read(policy.max_file_mb * MB + 1)
    return _store(owner=owner, name=upload.name or "", data=data, policy=policy)


def attachment_restore(*, owner: User, message_id: int, name: str, data: bytes) -> Attachment:
    """Store a file of an imported export with its message, checked exactly as an upload is.

    Raises:
        ValidationError: as `attachment_upload`.
    """
    policy = selectors.policy_get()
    if len(data) > policy.max_file_mb * MB:
        raise ValidationError(
            _("This file is %(size)s; the limit is %(limit)s.")
            % {"size": filesizeformat(len(data)), "limit": filesizeformat(policy.max_file_mb * MB)},
            code="too_large",
        )
    attachment = _store(owner=owner, name=name, data=data, policy=policy)
    Attachment.objects.filter(pk=attachment.pk).update(message_id=message_id)
    attachment.message_id = message_id
    return attachment


def _store(*, owner: User, name: str, data: bytes, policy: AttachmentPolicy) -> Attachment:
    """Inspect `data`, check the owner's storage, and save the file and its row (unattached)."""
    try:
        inspected = inspect.inspect(data, limits=selectors.policy_limits(policy))
    except inspect.Refused as exc:
        raise ValidationError(str(exc), code="refused") from None
    stored = len(inspected.data)
    if (
        policy.max_user_storage_mb
        and selectors.user_storage_bytes(user=owner) + stored > policy.max_user_storage_mb * MB
    ):
        raise ValidationError(
            _("Your files would take more than your %(limit)s of storage. Delete chats with files you no longer need.")
            % {"limit": filesizeformat(policy.max_user_storage_mb * MB)},
            code="storage_full",
        )
    attachment = Attachment(
        owner=owner,
        kind=inspected.kind,
        name=inspect.clean_name(name),
        content_type=inspected.content_type,
        size_bytes=stored,
        width=inspected.width,
        height=inspected.height,
        text=inspected.text.replace("\x00", "\ufffd"),
        text_cut=inspected.text_cut or inspected.pages_cut,
        pages=inspected.pages,
    )
    attachment.file.save("upload", ContentFile(inspected.data), save=False)
    try:
        attachment.save()
    except BaseException:
        default_storage.delete(attachment.file.name)
        raise
    return attachment


def attachments_attach(*, owner: User, public_ids: Iterable[str], message_id: int) -> list[Attachment]:
    """Attach `owner`'s unsent uploads `public_ids` to the message `message_id`; return them in upload order.

    Call inside the transaction that creates the message.

    Raises:
        ValidationError: an id is unknown, another user's or already sent
            (removed from the composer meanwhile), or there are more than the
            policy's files per message.
    """
    wanted = list(dict.fromkeys(public_ids))
    policy = selectors.policy_get()
    if len(wanted) > policy.max_files_per_message:
        raise ValidationError(
            _("At most %(limit)d files can go with one message.") % {"limit": policy.max_files_per_message},
            code="too_many_files",
        )
    found = selectors.attachments_unattached_for_user(user=owner, public_ids=wanted)
    if len(found) != len(wanted):
        raise ValidationError(_("A file of this message is gone; attach it again."), code="attachment_gone")
    Attachment.objects.filter(pk__in=[a.pk for a in found]).update(message_id=message_id)
    for attachment in found:
        attachment.message_id = message_id
    return found


def attachments_copy(*, from_message_id: int, to_message_id: int) -> list[Attachment]:
    """Attach the files of message `from_message_id` to `to_message_id` too (an edited question keeps them).

    The copies are new rows naming the same stored files (no bytes copied);
    storage counts each file once (`selectors.user_storage_bytes`).
    """
    copies = [
        Attachment(
            owner_id=a.owner_id,
            message_id=to_message_id,
            kind=a.kind,
            name=a.name,
            content_type=a.content_type,
            file=a.file.name,
            size_bytes=a.size_bytes,
            width=a.width,
            height=a.height,
            text=a.text,
            text_cut=a.text_cut,
            pages=a.pages,
        )
        for a in Attachment.objects.filter(message_id=from_message_id).order_by("pk")
    ]
    return Attachment.objects.bulk_create(copies)


def attachment_delete_unsent(*, attachment: Attachment) -> None:
    """Delete an upload no message has taken (removed from the composer); its file goes after the commit.

    Raises:
        ValidationError: the attachment was sent with a message.
    """
    if attachment.message_id is not None:
        raise ValidationError(_("This file was sent with a message; delete the chat to delete it."), code="sent")
    attachment.delete()


# Uploads never sent (a tab closed with files in its composer) are deleted after this long.
UNSENT_KEPT_FOR = timedelta(days=1)


def _unsent_sweep(*, owner: User) -> None:
    """Delete `owner`'s uploads that no message took within UNSENT_KEPT_FOR (their files go after the commit)."""
    Attachment.objects.filter(
        owner=owner, message__isnull=True, created_at__lt=timezone.now() - UNSENT_KEPT_FOR
    ).delete()


def file_delete_when_unused(*, name: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Delete the stored file `name` once the current transaction commits, unless a row still names it then.

    Called for every Attachment row deleted, however it goes (a chat deleted,
    a user deleted in the admin, an upload removed or swept, a cascade): the
    post_delete receiver in `attachments.signals`. After the commit, so a
    rolled-back delete keeps its files; kept while another row names the same
    file (an edited question's copies share it, `attachments_copy`). A file
    already gone is no error.
    """
    if not name:
        return

    def delete() -> None:
        if not Attachment.objects.using(using).filter(file=name).exists():
            default_storage.delete(name)

    transaction.on_commit(delete, using=using)


def files_orphaned(*, older_than: timedelta) -> Iterator[str]:
    """Yield the storage names under attachments/ that no Attachment row names, last modified over `older_than` ago.

    Such files are left by a process that died between storing a file and
    saving its row, or by deletions before files were deleted with their rows.
    The age keeps an upload whose row is being saved. One query per user folder.

    Raises:
        NotImplementedError: the storage cannot tell a file's modification time.
    """
    cutoff = timezone.now() - older_than
    if not default_storage.exists(ATTACHMENTS_FOLDER):
        return
    folders, _files = default_storage.listdir(ATTACHMENTS_FOLDER)
    for folder in sorted(folders):
        prefix = f"{ATTACHMENTS_FOLDER}/{folder}/"
        known = set(Attachment.objects.filter(file__startswith=prefix).values_list("file", flat=True))
        for file in sorted(default_storage.listdir(prefix.rstrip("/"))[1]):
            name = prefix + file
            if name not in known and default_storage.get_modified_time(name) < cutoff:
                yield name
