"""Reads of conversations and messages, each scoped to the user who asks, and what a user's replies have used."""

import copy
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from itertools import groupby, islice
from operator import itemgetter
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import (
    Case,
    IntegerField,
    Q,
    QuerySet,
    Value,
    When,
    prefetch_related_objects,
)
from django.db.models.query import RawQuerySet
from django.utils import timezone

from conversations.compiled import SelectIn
from conversations.models import Conversation, DailyUsage, Folder, Message, UnstoredReply, Versions
from personas.models import Persona

SIDEBAR_PAGE_SIZE = 50


def conversation_list_for_user(
    *,
    user: User,
    limit: int = SIDEBAR_PAGE_SIZE,
    before: tuple[datetime, UUID] | None = None,
    archived: bool = False,
    with_persona: bool = False,
    organized: bool = False,
    folder: Folder | None = None,
) -> QuerySet[Conversation]:
    """Return `user`'s unarchived (or only archived) conversations, newest activity first, at most `limit`.

    Unarchived ones that are pinned or in a folder are left out unless
    `organized`: the sidebar shows them above the list (`conversation_organized_for_user`).
    With `with_persona`, each also has `created_at` and its persona's slug and name, in the same query
    (the API's list, `api.conversations`).
    With `folder` (one of `user`'s), only the unarchived, unpinned ones in that folder (its sidebar group).

    Keyset pagination: `before` is the (updated_at, public_id) of the last
    conversation of the previous page; this page starts right after it.
    The order (updated_at, then public_id, both descending) is total, so pages
    neither repeat nor skip conversations, and the query walks the
    (owner, -updated_at) index instead of counting past an OFFSET.
    """
    conversations = Conversation.objects.filter(owner=user, archived=archived)
    if folder is not None:
        conversations = conversations.filter(pinned_at__isnull=True, folder=folder)
    elif not archived and not organized:
        conversations = conversations.filter(pinned_at__isnull=True, folder__isnull=True)
    if before is not None:
        updated_at, public_id = before
        conversations = conversations.filter(updated_at__lte=updated_at).filter(
            Q(updated_at__lt=updated_at) | Q(public_id__lt=public_id)
        )
    fields = ["public_id", "title", "archived", "updated_at"]
    if with_persona:
        conversations = conversations.select_related("persona")
        fields += ["created_at", "persona__slug", "persona__name"]
    return conversations.only(*fields).order_by("-updated_at", "-public_id")[:limit]


def folder_list_for_user(*, user: User) -> QuerySet[Folder]:
    """Return `user`'s folders by name."""
    return Folder.objects.filter(owner=user).order_by("name", "id")


def folder_get_for_user(*, user: User, public_id: UUID | str) -> Folder:
    """Return `user`'s folder `public_id`.

    Raises:
        Folder.DoesNotExist: no such folder, or another user's.
    """
    try:
        return Folder.objects.get(owner=user, public_id=public_id)
    except (ValueError, TypeError, ValidationError):  # Not a UUID.
        raise Folder.DoesNotExist from None


def conversation_organized_for_user(*, user: User, per_group: int) -> "RawQuerySet[Conversation]":
    """Return at most `per_group` of `user`'s pinned conversations and as many of each folder's, all unarchived.

    Pinned first (newest pin first), then each folder's unpinned ones, newest
    activity first, so the sidebar stays bounded however many there are (ask
    for `per_group + 1` to know whether more follow; the rest come page by page
    from `conversation_pinned_for_user` and `conversation_list_for_user(folder=...)`,
    in the same orders). Walks the partial index `conversation_organized`;
    the cap is a window function (ROW_NUMBER per group: the pins, then each folder).
    Each has `public_id`, `title`, `archived`, `updated_at`, `pinned_at` and `folder_id`.
    In SQL: the ORM took 4.7 ms to build the statement (the SQL itself runs in 0.1 ms), on
    every page with the sidebar (bench/README.md, the twelfth round).
    """
    return Conversation.objects.raw(_ORGANIZED_SQL, [user.pk, max(per_group, 1)])


_CONVERSATION_COLUMNS = {f.name: connection.ops.quote_name(f.column) for f in Conversation._meta.concrete_fields}
# Pins by pin time, filed ones by activity; the public id breaks ties, as the pages' keysets do.
_ORGANIZED_ORDER = (
    f"{_CONVERSATION_COLUMNS['pinned_at']} DESC NULLS LAST, "
    f"CASE WHEN {_CONVERSATION_COLUMNS['pinned_at']} IS NULL THEN {_CONVERSATION_COLUMNS['updated_at']} END DESC, "
    f"{_CONVERSATION_COLUMNS['public_id']} DESC"
)
# A user's pinned and filed conversations (their id, how many of each group), the first of each group by ROW_NUMBER.
_ORGANIZED_SQL = (
    "SELECT * FROM (SELECT "
    + ", ".join(
        _CONVERSATION_COLUMNS[name]
        for name in ("id", "public_id", "title", "archived", "updated_at", "pinned_at", "folder")
    )
    + f", ROW_NUMBER() OVER (PARTITION BY CASE WHEN {_CONVERSATION_COLUMNS['pinned_at']} IS NOT NULL THEN 0 "
    f"ELSE {_CONVERSATION_COLUMNS['folder']} END ORDER BY {_ORGANIZED_ORDER}) AS group_rank "
    f"FROM {connection.ops.quote_name(Conversation._meta.db_table)} "
    f"WHERE {_CONVERSATION_COLUMNS['owner']} = %s AND NOT {_CONVERSATION_COLUMNS['archived']} "
    f"AND ({_CONVERSATION_COLUMNS['pinned_at']} IS NOT NULL OR {_CONVERSATION_COLUMNS['folder']} IS NOT NULL)"
    f") AS organized WHERE group_rank <= %s ORDER BY {_ORGANIZED_ORDER}"
)


def conversation_pinned_for_user(
    *, user: User, limit: int, before: tuple[datetime, UUID] | None = None
) -> QuerySet[Conversation]:
    """Return at most `limit` of `user`'s unarchived pinned conversations, newest pin first.

    Keyset pagination as `conversation_list_for_user`, on (pinned_at, public_id):
    `before` is the pair of the last one of the previous page.
    """
    conversations = Conversation.objects.filter(owner=user, archived=False, pinned_at__isnull=False)
    if before is not None:
        pinned_at, public_id = before
        conversations = conversations.filter(pinned_at__lte=pinned_at).filter(
            Q(pinned_at__lt=pinned_at) | Q(public_id__lt=public_id)
        )
    return conversations.only("public_id", "title", "archived", "updated_at", "pinned_at").order_by(
        "-pinned_at", "-public_id"
    )[:limit]


def conversation_get_for_user(*, user: User, public_id: UUID | str) -> Conversation:
    """Return the conversation `public_id` if `user` owns it, with its persona, model and provider.

    Raises:
        Conversation.DoesNotExist: no such conversation, or another user's (callers answer 404).
    """
    conversation = conversations_get_for_users([(user, public_id)])[0]
    if conversation is None:
        raise Conversation.DoesNotExist
    return conversation


def conversations_get_for_users(asked: Sequence[tuple[User, UUID | str]]) -> list[Conversation | None]:
    """Return, for each (user, public id) of `asked`, that conversation as `conversation_get_for_user` does, or None.

    None where `conversation_get_for_user` raises DoesNotExist (no such
    conversation, another user's, not a UUID, an anonymous user). One query
    for all of them: a batch of sends (`services.replies_request`).
    """
    wanted: list[UUID | None] = []
    for user, public_id in asked:
        try:
            key = public_id if isinstance(public_id, UUID) else UUID(str(public_id))
        except ValueError:
            key = None
        wanted.append(key if getattr(user, "is_authenticated", False) else None)
    found = {c.public_id: c for c in _conversations_asked_with(key for key in wanted if key is not None)}
    conversations: list[Conversation | None] = []
    for (user, _public_id), key in zip(asked, wanted, strict=True):
        conversation = found.get(key) if key is not None else None
        if conversation is None or conversation.owner_id != user.pk:
            conversations.append(None)
            continue
        if any(c is conversation for c in conversations):  # Two sends to one chat: each gets its own instance.
            conversation = copy.copy(conversation)
        conversation.owner = user  # It is theirs: `conversation.owner` costs no query.
        conversations.append(conversation)
    return conversations


# The conversations of some public ids with what they are asked with (`conversations_get_for_users`), the
# statement compiled once: compiling its six models' columns was half of a lone send's CPU before its request left.
_conversations_asked_with: SelectIn[Conversation] = SelectIn(
    Conversation.objects.select_related("persona__model__provider", "chat_model__provider"), "public_id"
)


def message_list_for_conversation(*, conversation: Conversation) -> QuerySet[Message]:
    """Return the shown messages of `conversation` (already scoped by its selector), oldest first.

    Earlier versions of regenerated or edited messages are left out.
    """
    return Message.objects.filter(conversation=conversation, is_current=True).order_by("created_at", "id")


# Shown messages per page of a conversation: the page opens with the latest ones, older pages load on scroll.
MESSAGE_PAGE_SIZE = 50


@dataclass(frozen=True)
class MessagePage:
    """Consecutive shown messages of a conversation, oldest first; `more_before`: older shown messages exist."""

    messages: list[Message]
    more_before: bool

    @property
    def older_cursor(self) -> str:
        """Return the cursor of the page before this one (the oldest message's public id, 32 hex digits), or ""."""
        return self.messages[0].public_id.hex if self.more_before and self.messages else ""


def _earlier_than(message: Message) -> Q:
    """Messages placed before `message` in the order (created_at, id) of `message_list_for_conversation`."""
    # The first condition alone lets the (conversation, is_current, created_at) index bound the scan.
    return Q(created_at__lte=message.created_at) & (Q(created_at__lt=message.created_at) | Q(pk__lt=message.pk))


def message_page_for_conversation(
    *, conversation: Conversation, before: Message | None = None, size: int = MESSAGE_PAGE_SIZE
) -> MessagePage:
    """Return the last `size` shown messages of `conversation` placed before `before` (all of them when None).

    Keyset pagination in the order of `message_list_for_conversation`
    (created_at, then id): `before` is any message of `conversation` (the
    oldest one a page shows, whether or not it is still shown), so a page
    costs one query on the (conversation, is_current, created_at) index
    however far back it is, reading one row more than `size` to know whether
    older ones remain. Messages come oldest first.
    """
    messages = message_list_for_conversation(conversation=conversation)
    if before is not None:
        messages = messages.filter(_earlier_than(before))
    rows = list(messages.order_by("-created_at", "-id")[: size + 1])
    return MessagePage(messages=rows[:size][::-1], more_before=len(rows) > size)


def message_page_from(*, conversation: Conversation, first: Message, size: int = MESSAGE_PAGE_SIZE) -> MessagePage:
    """Return the shown messages of `conversation` from `first` to the newest, or the latest `size` if more.

    For a link to a message deep in the history (a search hit): the page
    must show it, so it opens at that message, however many follow it. A
    `first` that is not shown (an earlier version) changes nothing. One
    query when `first` is among the latest `size`, three otherwise.
    """
    latest = message_page_for_conversation(conversation=conversation, size=size)
    if not first.is_current or not latest.more_before or first.conversation_id != conversation.pk:
        return latest
    oldest = latest.messages[0]
    if (first.created_at, first.pk) >= (oldest.created_at, oldest.pk):
        return latest
    shown = message_list_for_conversation(conversation=conversation)
    rows = list(shown.filter(Q(created_at__gt=first.created_at) | Q(created_at=first.created_at, pk__gte=first.pk)))
    return MessagePage(messages=rows, more_before=shown.filter(_earlier_than(first)).exists())


# What a reply may see of earlier replies: an error bubble never becomes model input.
_FINISHED = (Message.Status.COMPLETE, Message.Status.STOPPED)


@dataclass(frozen=True)
class UpstreamHistory:
    """What a reply may see: the greeting, the latest finished messages (oldest first), how many there are in all.

    limit: the most messages `recent` holds (besides the greeting).
    last: the newest shown message, whatever its status (an error bubble
        too): the one a question sent now follows. None in an empty conversation.
    """

    greeting: Message | None
    recent: list[Message]
    total: int
    limit: int
    last: Message | None

    def with_message(self, message: Message) -> "UpstreamHistory":
        """Return the history once `message` is written after it was read and shown last; no query.

        What `message_history_for_upstream` would read then, for the question
        of a send written in the same transaction, or for the reply asked for
        when it was read, once stored (nothing else changes the shown
        conversation while a reply streams: sends, edits, regenerations and
        version switches are refused). `message` is the newest in `recent`
        when it is finished and not empty, else left out of it.
        """
        if message.status not in _FINISHED or not message.content:
            return replace(self, last=message)
        return UpstreamHistory(
            greeting=self.greeting,
            recent=[*self.recent, message][-self.limit :],
            total=self.total + 1,
            limit=self.limit,
            last=message,
        )


def message_history_for_upstream(*, conversation: Conversation, limit: int) -> UpstreamHistory:
    """Return the greeting and the latest `limit` finished messages of the shown conversation, and its last message.

    The greeting is the conversation's first message when it is an assistant
    message (`conversation_create` writes it). Failed, empty and streaming
    replies are left out, so an error bubble never becomes model input.
    `total` counts every such message, for "N of M messages in context".
    The user messages of `recent` come with their files (`Message.attachments`
    prefetched, one query when there are any). One query for the messages when
    the shown messages, greeting included, are at most `limit` + 1 (a send
    reads this on every message); else three, four when fewer than `limit` of
    the latest `limit` + 2 are finished. Many at once: `message_histories_for_upstream`.
    """
    return message_histories_for_upstream([(conversation, limit)])[0]


def message_histories_for_upstream(asked: Sequence[tuple[Conversation, int]]) -> list[UpstreamHistory]:
    """Return `message_history_for_upstream(conversation, limit)` for each (conversation, limit) of `asked`.

    The latest messages of all of them are read in one statement (a batch of
    sends: `services.replies_request`), their files in one more; the
    conversations whose history is longer add their own queries as
    `message_history_for_upstream` says. Each conversation at most once.
    """
    if not asked:
        return []
    latest: dict[int, list[Message]] = {conversation.pk: [] for conversation, _limit in asked}
    params: list[object] = []
    for conversation, limit in asked:
        params += [conversation.pk, True, limit + 2]
    for message in Message.objects.raw(" UNION ALL ".join([_LATEST_SHOWN_SQL] * len(asked)), params):
        latest[message.conversation_id].append(message)
    histories = []
    for conversation, limit in asked:
        shown = sorted(latest[conversation.pk], key=lambda m: (m.created_at, m.pk), reverse=True)
        histories.append(_history_from_latest(conversation, limit, shown))
    # Only a user message carries files (`upstream.message_content`).
    asking = [m for history in histories for m in history.recent if m.role == Message.Role.USER]
    prefetch_related_objects(asking, "attachments")
    return histories


def message_files_loaded(message: Message) -> bool:
    """Return whether `message.attachments.all()` runs no query: prefetched, or set by `_no_attachments_known`."""
    return Message.attachments.field.remote_field.cache_name in getattr(message, "_prefetched_objects_cache", {})


def _history_from_latest(conversation: Conversation, limit: int, shown: list[Message]) -> UpstreamHistory:
    """Return the history of `conversation` from `shown`, its latest `limit` + 2 shown messages, newest first."""
    newest = [m for m in shown if m.status in _FINISHED and m.content]
    whole = len(shown) < limit + 2  # Then the oldest starts the conversation, and nothing is left to count.
    if whole:
        first = shown[-1] if shown else None
    else:
        messages = message_list_for_conversation(conversation=conversation)
        finished = messages.filter(status__in=_FINISHED).exclude(content="")
        if len(newest) < limit:
            newest = list(finished.order_by("-created_at", "-id")[: limit + 2])  # Finished ones further back.
        first = messages.first()
    greeting = first if first is not None and first.role == Message.Role.ASSISTANT else None
    others = [m for m in newest if greeting is None or m.pk != greeting.pk]
    recent = others[:limit]
    if not whole and greeting is not None:
        finished = finished.exclude(pk=greeting.pk)
    total = len(others) if whole else finished.count()
    return UpstreamHistory(
        greeting=greeting, recent=recent[::-1], total=total, limit=limit, last=shown[0] if shown else None
    )


# One conversation's latest shown messages (its id, True, how many), newest first, on the
# (conversation, is_current, created_at) index; in SQL so that a batch's are one statement.
_MESSAGE_COLUMNS = {f.name: connection.ops.quote_name(f.column) for f in Message._meta.concrete_fields}
_LATEST_SHOWN_SQL = (
    f"SELECT * FROM (SELECT {', '.join(_MESSAGE_COLUMNS.values())} "
    f"FROM {connection.ops.quote_name(Message._meta.db_table)} "
    f"WHERE {_MESSAGE_COLUMNS['conversation']} = %s AND {_MESSAGE_COLUMNS['is_current']} = %s "
    f"ORDER BY {_MESSAGE_COLUMNS['created_at']} DESC, {_MESSAGE_COLUMNS['id']} DESC LIMIT %s) AS latest"
)


def message_versions(*, conversation: Conversation, messages: list[Message]) -> dict[int, Versions]:
    """Return the versions of each of `messages` (of `conversation`), keyed by message pk, in one query.

    Versions are siblings: the same parent and role (a regenerated reply, an edited question).
    In SQL: the ORM took about 1 ms to build the statement, on every finished reply's bubble
    (bench/README.md, the fourteenth round); SQLite runs it in 0.04 ms.
    """
    if not messages:
        return {}
    parent_ids = {m.parent_id for m in messages}
    known = sorted(pid for pid in parent_ids if pid is not None)
    same_parent = [f"{_MESSAGE_COLUMNS['parent']} IN ({', '.join(['%s'] * len(known))})"] if known else []
    if None in parent_ids:
        same_parent.append(f"{_MESSAGE_COLUMNS['parent']} IS NULL")
    with connection.cursor() as cursor:
        cursor.execute(_SIBLINGS_SQL.format(same_parent=" OR ".join(same_parent)), [conversation.pk, *known])
        siblings = cursor.fetchall()
    groups: dict[tuple, list[tuple[int, UUID]]] = {}
    for pk, public_id, parent_id, role in siblings:
        groups.setdefault((parent_id, role), []).append((pk, _PUBLIC_ID.to_python(public_id)))
    versions = {}
    for message in messages:
        group = groups.get((message.parent_id, message.role), [])
        ids = [pk for pk, _ in group]
        if message.pk not in ids:
            continue
        i = ids.index(message.pk)
        versions[message.pk] = Versions(
            index=i + 1,
            total=len(group),
            previous=group[i - 1][1] if i > 0 else None,
            next=group[i + 1][1] if i + 1 < len(group) else None,
        )
    return versions


# A conversation's messages under some parents (its id, the parents' ids), oldest first: `{same_parent}` is
# filled with the parents' condition, `%s` placeholders. The public id as the database gives it (`_PUBLIC_ID`).
_SIBLINGS_SQL = (
    "SELECT "
    + ", ".join(_MESSAGE_COLUMNS[name] for name in ("id", "public_id", "parent", "role"))
    + f" FROM {connection.ops.quote_name(Message._meta.db_table)} "
    f"WHERE {_MESSAGE_COLUMNS['conversation']} = %s AND ({{same_parent}}) "
    f"ORDER BY {_MESSAGE_COLUMNS['created_at']}, {_MESSAGE_COLUMNS['id']}"
)
_PUBLIC_ID = Message._meta.get_field("public_id")


def message_get_for_user(*, user: User, conversation: Conversation, public_id: UUID | str) -> Message:
    """Return message `public_id` of `conversation`, which must be `user`'s (from `conversation_get_for_user`).

    Raises:
        Message.DoesNotExist: no such message in that conversation.
    """
    if conversation.owner_id != getattr(user, "pk", None):
        raise Message.DoesNotExist
    try:
        return Message.objects.select_related("conversation").get(conversation=conversation, public_id=public_id)
    except (ValueError, TypeError, ValidationError):
        raise Message.DoesNotExist from None


EXPORT_CONVERSATIONS_PER_QUERY = 100
# Rows per fetch: messages can be long, so a fetch holds a few hundred at most.
EXPORT_ROWS_PER_FETCH = 200
# The message columns an export writes (transfer.export); `message_iter_for_export` reads these by default.
EXPORT_MESSAGE_FIELDS = (
    "public_id",
    "role",
    "content",
    "created_at",
    "model_id",
    "status",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "tokens_estimated",
    "error_text",
)


def conversation_iter_for_export(*, user: User, chunk_size: int = EXPORT_ROWS_PER_FETCH) -> Iterator[Conversation]:
    """Yield every conversation of `user`, archived ones too, in creation order, persona, model and folder loaded.

    With them, the conversations of other accounts in which `user` asked
    something (IM group chats, whose conversation belongs to the group's own
    account: bots), each with `export_part_of` set to `user.pk` (None on the
    user's own), no title (the group's came from whoever spoke first) and no
    folder (the group account's, not the user's): `message_iter_for_export`
    gives only `user`'s part of them, their questions and the replies to
    them. Rows come `chunk_size` at a time from one query (a server-side
    cursor on PostgreSQL), never as one list.

    The personas (with their models) and the user's folders are read once,
    before the conversations, and given to each: joined to every
    conversation's row, each persona and its system prompt were read and
    built again for each of its conversations. One added meanwhile loads
    when asked for.
    """
    asked_elsewhere = Message.objects.filter(asked_by=user).exclude(conversation__owner=user).values("conversation_id")
    conversations = (
        Conversation.objects.filter(Q(owner=user) | Q(pk__in=asked_elsewhere))
        .annotate(export_part_of=Case(When(owner=user, then=None), default=Value(user.pk), output_field=IntegerField()))
        .order_by("id")
    )
    personas = Persona.objects.select_related("model").in_bulk()
    folders = Folder.objects.filter(owner=user).in_bulk()
    for conversation in conversations.iterator(chunk_size=chunk_size):
        if conversation.export_part_of is not None:
            conversation.title = ""
            conversation.folder = None
        if (persona := personas.get(conversation.persona_id)) is not None:
            conversation.persona = persona
        if (folder := folders.get(conversation.folder_id)) is not None:
            conversation.folder = folder
        yield conversation


def message_iter_for_export(
    *,
    conversations: Iterable[Conversation],
    fields: Sequence[str] = EXPORT_MESSAGE_FIELDS,
    per_query: int = EXPORT_CONVERSATIONS_PER_QUERY,
    chunk_size: int = EXPORT_ROWS_PER_FETCH,
) -> Iterator[tuple[Conversation, list[Any]]]:
    """Pair each of `conversations` (already scoped to their owner) with its current path, oldest first.

    Of a conversation with `export_part_of` (a user's pk:
    `conversation_iter_for_export`), only the messages that user asked.
    The messages are rows, not models: named tuples of `conversation_id`
    and `fields` (Message field names), read as values; building a model
    per message took most of an export's reading time. One query per
    `per_query` conversations, its rows fetched `chunk_size` at a time;
    memory holds the messages of one conversation at a time. Pairs come in
    the order of the conversations' pks.
    """
    conversations = iter(conversations)
    while batch := sorted(islice(conversations, per_query), key=lambda conversation: conversation.pk):
        parts = Q(conversation__in=[c for c in batch if getattr(c, "export_part_of", None) is None])
        for conversation in batch:
            if (asker_id := getattr(conversation, "export_part_of", None)) is not None:
                parts |= Q(conversation=conversation, asked_by_id=asker_id)
        rows = (
            Message.objects.filter(parts, is_current=True)
            .order_by("conversation_id", "created_at", "id")
            .values_list("conversation_id", *fields, named=True)
            .iterator(chunk_size=chunk_size)
        )
        groups = groupby(rows, key=itemgetter(0))
        group = next(groups, None)
        for conversation in batch:
            if group is not None and group[0] == conversation.pk:
                yield conversation, list(group[1])
                group = next(groups, None)
            else:
                yield conversation, []


def message_list_by_ids(*, conversation: Conversation, public_ids: list[str]) -> list[Message]:
    """Return the messages of `conversation` among `public_ids` (malformed ids ignored)."""
    valid = []
    for public_id in public_ids:
        try:
            valid.append(UUID(public_id))
        except (ValueError, TypeError):
            continue
    return list(Message.objects.filter(conversation=conversation, public_id__in=valid))


# The window of the "messages per minute" limit: a sliding minute, not a calendar one.
SEND_WINDOW = timedelta(seconds=60)


@dataclass(frozen=True)
class Usage:
    """What a user has used at `now`, counted from the database.

    sends_last_minute: replies started in (now - 60 s, now].
    replies_streaming: replies still streaming (live ones only, when a cut-off was given).
    tokens_today: prompt + completion tokens of the replies started since `day_start`.
    day_start, day_end: today's local midnights (settings.TIME_ZONE), aware datetimes.
    """

    sends_last_minute: int
    replies_streaming: int
    tokens_today: int
    now: datetime
    day_start: datetime
    day_end: datetime


def user_usage(*, user: User, now: datetime | None = None, stale_before: datetime | None = None) -> Usage:
    """Return what `user` has used at `now` (default: the current time). One query.

    Counts the assistant messages the user asked for (`Message.asked_by`: one
    per reply asked of the upstream, so sends, edits and regenerations all
    count, in their own conversations and in IM group chats alike), and their
    `UnstoredReply` rows (replies asked through the API with `store: false`):
    - started in the last 60 s;
    - streaming; with `stale_before`, only those whose heartbeat (or, without
      one, whose start) is at or after it: an older one was left by a worker
      that died and is no longer being written (see conversations.services.replies_streaming_live);
    and the tokens of the replies started since local midnight, from the
    day's `DailyUsage` row (services.usage_add adds each reply's as it is
    stored). Replies other users asked for never count, even in a
    conversation of this user's. Rows read: the user's messages of the last
    minute and their streaming replies (the `message_asked_by_created` and
    `message_asked_by_streaming` indexes), never their history. Many at once: `users_usage`.
    """
    return users_usage(user_ids=[user.pk], now=now, stale_before=stale_before)[user.pk]


def users_usage(
    *, user_ids: Sequence[int], now: datetime | None = None, stale_before: datetime | None = None
) -> dict[int, Usage]:
    """Return what each of `user_ids` has used at `now` (`user_usage`), by user id, in one query."""
    now = now or timezone.now()
    day_start, day_end = _local_day(now)
    ops = connection.ops
    minute_ago = ops.adapt_datetimefield_value(now - SEND_WINDOW)
    live, live_params = "", []
    if stale_before is not None:
        stale = ops.adapt_datetimefield_value(stale_before)
        live, live_params = " AND (heartbeat_at >= %s OR (heartbeat_at IS NULL AND created_at >= %s))", [stale, stale]
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    params: list[Any] = []
    for user_id in ids:
        counts = [user_id, minute_ago, user_id, *live_params]  # Of stored replies, then of unstored ones.
        params += [user_id, *counts, *counts, user_id, ops.adapt_datefield_value(day_start.date())]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join([_USAGE_SQL.format(live=live)] * len(ids)), params)
        rows = cursor.fetchall()
    return {
        user_id: Usage(
            sends_last_minute=sends + unstored_sends,
            replies_streaming=streaming + unstored_streaming,
            tokens_today=tokens or 0,
            now=now,
            day_start=day_start,
            day_end=day_end,
        )
        for user_id, sends, streaming, unstored_sends, unstored_streaming, tokens in rows
    }


def conversation_has_streaming(*, conversation_id: int) -> bool:
    """Return whether a reply of conversation `conversation_id` is marked streaming (live, or left by a dead worker).

    One statement through the `message_conversation_streaming` index: every
    send, socket and page asks it, and there is seldom one (then
    `services.replies_streaming_live` reads them). Many at once: `conversations_streaming`.
    """
    return bool(conversations_streaming(conversation_ids=[conversation_id]))


def conversations_streaming(*, conversation_ids: Sequence[int]) -> set[int]:
    """Return those of `conversation_ids` with a reply marked streaming (`conversation_has_streaming`); one query."""
    ids = list(dict.fromkeys(conversation_ids))
    if not ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join([_HAS_STREAMING_SQL] * len(ids)), ids)
        return {row[0] for row in cursor.fetchall()}


# user_usage's one query, in SQL: built by the ORM (five scalar subqueries over OuterRef), it cost 2.1 ms of
# CPU before reaching the database, a third of a send's (bench/README.md). A reply answers a question; a
# greeting (no parent) was asked of no upstream. Stored and unstored replies are counted apart, not with an
# OR, so that SQLite reads each through its own index (an OR made it read the whole history). The constants
# are literals, so that SQLite proves the partial index's condition (`message_asked_by_streaming`).
_MESSAGE, _UNSTORED, _DAILY = (model._meta.db_table for model in (Message, UnstoredReply, DailyUsage))
_REPLY = f"role = '{Message.Role.ASSISTANT.value}' AND parent_id IS NOT NULL"
# In SQL: the ORM's query of full rows cost 0.5 ms of a send's CPU, the statement 0.05 (bench/README.md, the
# fifth round). The status is a literal, for the partial index.
# Each statement below reads for one conversation or user, its first column says which: a batch's are one
# UNION ALL (services.replies_request).
_HAS_STREAMING_SQL = (
    f"SELECT * FROM (SELECT conversation_id FROM {_MESSAGE} WHERE conversation_id = %s"
    f" AND status = '{Message.Status.STREAMING.value}' LIMIT 1) AS streaming"
)
_USAGE_SQL = (
    "SELECT %s,"
    f" (SELECT COUNT(*) FROM {_MESSAGE} WHERE asked_by_id = %s AND {_REPLY} AND created_at > %s),"
    f" (SELECT COUNT(*) FROM {_MESSAGE} WHERE asked_by_id = %s AND {_REPLY}"
    f" AND status = '{Message.Status.STREAMING.value}'{{live}}),"
    f" (SELECT COUNT(*) FROM {_UNSTORED} WHERE user_id = %s AND created_at > %s),"
    f" (SELECT COUNT(*) FROM {_UNSTORED} WHERE user_id = %s AND NOT finished{{live}}),"
    f" (SELECT tokens FROM {_DAILY} WHERE user_id = %s AND day = %s)"
)


def user_send_free_at(*, user: User, limit: int, now: datetime) -> datetime:
    """Return when fewer than `limit` replies `user` asked for (stored or not) will have been started in the last 60 s.

    That is 60 s after the `limit`-th newest reply of the last minute; `now`
    when there are fewer than `limit` of them. One query.
    """
    stored = (
        Message.objects.filter(
            asked_by=user,
            role=Message.Role.ASSISTANT,
            parent__isnull=False,
            created_at__gt=now - SEND_WINDOW,
        )
        .order_by()
        .values_list("created_at", flat=True)
    )
    unstored = (
        UnstoredReply.objects.filter(user=user, created_at__gt=now - SEND_WINDOW)
        .order_by()
        .values_list("created_at", flat=True)
    )
    started = stored.union(unstored, all=True).order_by("-created_at")[limit - 1 : limit]
    return next(iter(started), now - SEND_WINDOW) + SEND_WINDOW


def _local_day(now: datetime) -> tuple[datetime, datetime]:
    """Return the midnights (settings.TIME_ZONE) that start and end the day of `now`."""
    zone = timezone.get_default_timezone()
    today = timezone.localtime(now, zone).date()
    start = datetime.combine(today, time.min, tzinfo=zone)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=zone)
    return start, end
