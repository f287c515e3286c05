"""Writes that organise a user's conversations in the sidebar: pin and unpin, folders, moving into and out of them."""

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations.models import Conversation, Folder
from conversations.services import storable_text

FOLDER_NAME_MAX_CHARS: int = Folder._meta.get_field("name").max_length or 100


def conversation_set_pinned(*, conversation: Conversation, pinned: bool) -> Conversation:
    """Pin `conversation` (already scoped to its owner) to the top of the sidebar, or unpin it."""
    conversation.pinned_at = timezone.now() if pinned else None
    conversation.save(update_fields=["pinned_at"])
    return conversation


def folder_name_clean(*, name: object) -> str:
    """Return `name` stripped, as a folder may be called.

    Raises:
        ValidationError: empty, or longer than FOLDER_NAME_MAX_CHARS.
    """
    text = storable_text(" ".join(str(name or "").split()))
    if not text:
        raise ValidationError(_("Give the folder a name."), code="blank")
    if len(text) > FOLDER_NAME_MAX_CHARS:
        raise ValidationError(
            _("A folder name has at most %(max)d characters.") % {"max": FOLDER_NAME_MAX_CHARS}, code="max_length"
        )
    return text


def folder_get_or_create(*, owner: User, name: object) -> Folder:
    """Return `owner`'s folder called `name` (after `folder_name_clean`), made if it does not exist yet.

    Raises:
        ValidationError: the name is blank or too long.
    """
    name = folder_name_clean(name=name)
    try:
        with transaction.atomic():
            folder, _ = Folder.objects.get_or_create(owner=owner, name=name)
    except IntegrityError:  # Made by another request in between.
        folder = Folder.objects.get(owner=owner, name=name)
    return folder


def conversation_move(*, conversation: Conversation, folder: Folder | None) -> Conversation:
    """Put `conversation` into `folder` (both already scoped to the same owner), or out of any folder (None)."""
    if folder is not None and folder.owner_id != conversation.owner_id:
        raise ValueError("a conversation goes only into a folder of its owner")
    conversation.folder = folder
    conversation.save(update_fields=["folder"])
    return conversation


def folder_rename(*, folder: Folder, name: object) -> Folder:
    """Rename `folder` (already scoped to its owner) to `name` (after `folder_name_clean`).

    Raises:
        ValidationError: the name is blank, too long, or another folder of the owner's has it.
    """
    name = folder_name_clean(name=name)
    old_name, folder.name = folder.name, name
    try:
        with transaction.atomic():
            folder.save(update_fields=["name"])
    except IntegrityError:  # The owner's folder names are unique (constraint).
        folder.name = old_name
        raise ValidationError(
            _("You already have a folder called “%(name)s”.") % {"name": name}, code="unique"
        ) from None
    return folder


def folder_delete(*, folder: Folder) -> None:
    """Delete `folder` (already scoped to its owner); its conversations stay, unfiled."""
    folder.delete()
