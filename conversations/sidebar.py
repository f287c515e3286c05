"""The conversation list of the sidebar (and of the archive page): pages of conversations grouped by date.

A page holds SIDEBAR_PAGE_SIZE conversations, newest activity first. The
next page is asked for with an opaque cursor naming the last conversation
shown, so a page costs one indexed query however far down the list it is.
Conversations are grouped by the local date of their last activity in the
current time zone: Today, Yesterday, Previous 7 days, Previous 30 days, then
one group per month ("November 2026", in the active language's format).
Pinned conversations and folders lead the first page: the GROUP_PAGE_SIZE
latest pins, and each folder's GROUP_PAGE_SIZE most recently active
conversations; the rest come GROUP_PAGE_SIZE at a time (`pinned_page`,
`folder_page`), with the same kind of cursor (on the pin time for pins).
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from django.contrib.auth.models import User
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from conversations import selectors
from conversations.models import Conversation, Folder

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# "<microseconds since the epoch>.<public id as 32 hex digits>": no internal id in the URL.
# Conversations the pinned list and each folder show in the sidebar before their "Show more": a page
# stays bounded however many chats are pinned or filed (a few screens' worth; the dated list's is SIDEBAR_PAGE_SIZE).
GROUP_PAGE_SIZE = 20
_CURSOR = re.compile(r"(\d{1,18})\.([0-9a-f]{32})")


class InvalidCursor(ValueError):
    """A `before` cursor that this module did not write."""


@dataclass(frozen=True)
class Row:
    """One conversation in the list; `header` is its group's label when the group starts at this row, else ""."""

    conversation: Conversation
    header: str


@dataclass(frozen=True)
class FolderGroup:
    """One folder of the sidebar with (a page of) its unarchived, unpinned conversations, newest activity first.

    `next_cursor` asks `folder_page` for the ones after these ("" when none follow).
    """

    folder: Folder
    conversations: list[Conversation]
    next_cursor: str = ""


@dataclass(frozen=True)
class PinnedPage:
    """A page of the pinned conversations, newest pin first; `next_cursor` asks for the next ("" on the last)."""

    conversations: list[Conversation]
    next_cursor: str


@dataclass(frozen=True)
class Page:
    """One page of the list; `next_cursor` asks for the page after it ("" on the last page).

    `continued`: the page follows another (it was asked for with a cursor).
    `pinned`, `folders`: what leads the first page of unarchived conversations
    (empty on other pages); the date-grouped rows leave those conversations out.
    `pinned_next_cursor` asks `pinned_page` for the pins after `pinned` ("" when none follow).
    """

    rows: list[Row]
    next_cursor: str
    archived: bool
    continued: bool
    pinned: list[Conversation] = field(default_factory=list)
    folders: list[FolderGroup] = field(default_factory=list)
    pinned_next_cursor: str = ""

    @property
    def pinned_page(self) -> PinnedPage:
        """The pinned conversations this page leads with, as the first page of `pinned_page`."""
        return PinnedPage(conversations=self.pinned, next_cursor=self.pinned_next_cursor)


def date_group(moment: datetime, *, today: date) -> str:
    """Return the label of the group `moment` falls in, seen from the local date `today`.

    Days are calendar days in the current time zone (not 24-hour spans), so
    a conversation from 23:59 yesterday is in Yesterday at 00:01 today.
    """
    day = timezone.localtime(moment).date()
    age_days = (today - day).days
    if age_days <= 0:  # A clock running ahead still counts as today.
        return _("Today")
    if age_days == 1:
        return _("Yesterday")
    if age_days <= 7:
        return _("Previous 7 days")
    if age_days <= 30:
        return _("Previous 30 days")
    return formats.date_format(day, "YEAR_MONTH_FORMAT")


def cursor_encode(conversation: Conversation, *, pinned: bool = False) -> str:
    """Return the cursor of the page that follows `conversation` (in the pinned list: by its pin time)."""
    moment = conversation.pinned_at if pinned and conversation.pinned_at else conversation.updated_at
    micros = (moment - _EPOCH) // _MICROSECOND
    return f"{micros}.{conversation.public_id.hex}"


def cursor_decode(cursor: str) -> tuple[datetime, UUID]:
    """Return the (updated_at or pinned_at, public_id) a cursor from `cursor_encode` names.

    Raises:
        InvalidCursor: `cursor` is not in that shape.
    """
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise InvalidCursor(cursor)
    try:
        updated_at = _EPOCH + int(match[1]) * _MICROSECOND
    except OverflowError:
        raise InvalidCursor(cursor) from None
    return updated_at, UUID(hex=match[2])


def conversation_page(
    *, user: User, cursor: str = "", archived: bool = False, size: int = selectors.SIDEBAR_PAGE_SIZE
) -> Page:
    """Return the page of `user`'s conversations after `cursor` ("" for the first page), grouped by date.

    One query (three for the first page of unarchived ones, which also holds the pinned conversations and
    the folders): it reads one row more than `size` to know whether a page follows.
    A page that continues the previous page's group repeats no header: the
    group of the previous page's last conversation is known from the cursor.

    Raises:
        InvalidCursor: `cursor` is not one that `cursor_encode` wrote.
    """
    before = cursor_decode(cursor) if cursor else None
    conversations = list(
        selectors.conversation_list_for_user(user=user, limit=size + 1, before=before, archived=archived)
    )
    more = len(conversations) > size
    conversations = conversations[:size]
    today = timezone.localdate()
    previous = date_group(before[0], today=today) if before else None
    rows = []
    for conversation in conversations:
        group = date_group(conversation.updated_at, today=today)
        rows.append(Row(conversation=conversation, header=group if group != previous else ""))
        previous = group
    next_cursor = cursor_encode(conversations[-1]) if more else ""
    page = Page(rows=rows, next_cursor=next_cursor, archived=archived, continued=before is not None)
    if archived or before:
        return page
    return _with_organized(page, user=user)


def pinned_page(*, user: User, cursor: str = "", size: int = GROUP_PAGE_SIZE) -> PinnedPage:
    """Return the page of `user`'s pinned conversations after `cursor` ("" for the first). One query.

    Raises:
        InvalidCursor: `cursor` is not one that `cursor_encode` wrote.
    """
    before = cursor_decode(cursor) if cursor else None
    conversations = list(selectors.conversation_pinned_for_user(user=user, limit=size + 1, before=before))
    return PinnedPage(*_cut(conversations, size, pinned=True))


def folder_page(*, user: User, folder: Folder, cursor: str = "", size: int = GROUP_PAGE_SIZE) -> FolderGroup:
    """Return the page of `folder`'s conversations (one of `user`'s) after `cursor` ("" for the first). One query.

    Raises:
        InvalidCursor: `cursor` is not one that `cursor_encode` wrote.
    """
    before = cursor_decode(cursor) if cursor else None
    conversations = list(selectors.conversation_list_for_user(user=user, limit=size + 1, before=before, folder=folder))
    return _folder_group(folder, conversations, size)


def _folder_group(folder: Folder, conversations: list[Conversation], size: int) -> FolderGroup:
    """Return the group of `folder` showing the first `size` of `conversations`."""
    return FolderGroup(folder, *_cut(conversations, size))


def _cut(conversations: list[Conversation], size: int, *, pinned: bool = False) -> tuple[list[Conversation], str]:
    """Return the first `size` of `conversations` (read with one more, if there is) and the next page's cursor."""
    shown = conversations[:size]
    return shown, cursor_encode(shown[-1], pinned=pinned) if len(conversations) > size else ""


def _with_organized(page: Page, *, user: User) -> Page:
    """Return `page` with the user's pinned conversations and folders (GROUP_PAGE_SIZE each). Two queries."""
    folders = selectors.folder_list_for_user(user=user)
    filed: dict[int, list[Conversation]] = {folder.pk: [] for folder in folders}
    pinned = []
    for conversation in selectors.conversation_organized_for_user(user=user, per_group=GROUP_PAGE_SIZE + 1):
        if conversation.pinned_at is not None:
            pinned.append(conversation)
        elif conversation.folder_id in filed:
            filed[conversation.folder_id].append(conversation)
    pinned_first = PinnedPage(*_cut(pinned, GROUP_PAGE_SIZE, pinned=True))
    return Page(
        rows=page.rows,
        next_cursor=page.next_cursor,
        archived=page.archived,
        continued=page.continued,
        pinned=pinned_first.conversations,
        pinned_next_cursor=pinned_first.next_cursor,
        folders=[_folder_group(folder, filed[folder.pk], GROUP_PAGE_SIZE) for folder in folders],
    )
