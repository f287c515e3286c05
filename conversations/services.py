"""Writes of conversations and messages. Views and consumers call these, never the ORM directly.

A write that open tabs must see is broadcast from here, after its
transaction commits (`events.send_on_commit`): new and replaced bubbles,
titles, and stopping a deleted conversation's reply.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.selectors import Limits, custom_instructions_texts
from attachments.models import Attachment
from attachments.services import attachments_attach, attachments_copy
from conversations import events, fragments, quotas, rendering, selectors, upstream
from conversations.compiled import InsertMany
from conversations.models import Conversation, DailyUsage, Message, UnstoredReply
from conversations.rows import rows_update
from llm.tokens import count_tokens, counter_name
from personas.models import ChatModel, Persona
from personas.selectors import chat_model_list_for_persona

TITLE_MAX_CHARS = 80


class DuplicateSend(Exception):
    """A send with an idempotency key already seen: in this conversation, or (a first message) in one it started.

    conversation: the conversation holding the message already sent, when known.
    """

    def __init__(self, key: str, conversation: Conversation | None = None) -> None:
        super().__init__(key)
        self.conversation = conversation


@dataclass(frozen=True)
class SentMessage:
    """The saved user message and the empty assistant message that will hold the reply."""

    user_message: Message
    assistant_message: Message


def conversation_create(*, owner: User, persona: Persona | None) -> Conversation:
    """Create a conversation with `persona`; its greeting becomes the first assistant message.

    persona: None for a conversation with a model rather than a persona (the
        API's models for direct use), which has no greeting.
    """
    with transaction.atomic():
        conversation = Conversation.objects.create(owner=owner, persona=persona)
        if persona is not None and persona.greeting.strip():
            Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                content=persona.greeting,
                content_html=rendering.render_markdown(persona.greeting),
                **content_tokens(persona.greeting, model_id=persona.model.model_id),
                status=Message.Status.COMPLETE,
            )
    return conversation


def storable_text(text: str) -> str:
    """Return `text` with NUL characters replaced by U+FFFD: PostgreSQL text cannot hold them, SQLite can.

    Applied to every text that reaches the database (messages typed or
    imported, model output, titles), so both databases store the same thing.
    """
    return text.replace("\x00", "\ufffd")


def message_text_clean(*, text: object) -> str:
    """Return the user's message ready to save.

    Raises:
        ValidationError: the message is not text, is empty or blank, or is
            longer than `settings.CHAT_MAX_MESSAGE_CHARS` characters.
    """
    if not isinstance(text, str):
        raise ValidationError(_("The message must be text."), code="invalid")
    text = storable_text(text).strip()
    if not text:
        raise ValidationError(_("Type a message before sending."), code="empty")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise ValidationError(
            _("The message is %(length)d characters long; the limit is %(limit)d.")
            % {"length": len(text), "limit": limit},
            code="too_long",
        )
    return text


def title_from_text(text: str) -> str:
    """Return a title from a message: its first non-blank line, cut to TITLE_MAX_CHARS."""
    first_line = next((line.strip() for line in storable_text(text).splitlines() if line.strip()), "")
    if len(first_line) > TITLE_MAX_CHARS:
        first_line = first_line[: TITLE_MAX_CHARS - 1].rstrip() + "…"
    return first_line


def message_content_html(*, role: str, content: str) -> str:
    """Return the HTML a message of `role` stores for `content` (`Message.content_html`).

    A user's text is shown as typed, its formulas as MathML
    (`rendering.render_user_text`); a reply's, a greeting's and a system
    message's is rendered Markdown (`rendering.render_markdown`). "" for no text.
    """
    if not content:
        return ""
    if role == Message.Role.USER:
        return str(rendering.render_user_text(content))
    return str(rendering.render_markdown(content))


def message_send(
    *,
    conversation: Conversation,
    text: str,
    idempotency_key: str = "",
    asked_by: User | None = None,
    history: selectors.UpstreamHistory | None = None,
    on_question: Callable[[Message], None] | None = None,
) -> SentMessage:
    """Save a user message and the assistant message its reply will fill, in one transaction.

    `text` must come from `message_text_clean`. The user message follows
    the last message shown; the reply answers it. Both are `asked_by` the
    given user (None: the conversation's owner), whose quota and usage count
    the reply. Three writes: the two messages and the conversation's title
    and activity time; one read of the last message shown, none when
    `history` (the conversation's, read in the caller's transaction) gives it.
    `on_question` is called with the user message once it is written, before
    the rest (`reply_request`'s `on_request`).

    Raises:
        DuplicateSend: `idempotency_key` was already used in this conversation.
    """
    try:
        with transaction.atomic():
            previous = history.last if history is not None else _last_shown(conversation)
            sent = _question_create(
                conversation=conversation,
                parent_id=previous.pk if previous is not None else None,
                text=text,
                idempotency_key=idempotency_key,
                asked_by=asked_by,
                on_question=on_question,
            )
            conversation.save(update_fields=_conversation_asked(conversation, text=text, now=timezone.now()))
    except IntegrityError:
        _refuse_duplicate(conversation, idempotency_key)
        raise
    return sent


def _conversation_asked(conversation: Conversation, *, text: str, now: datetime) -> list[str]:
    """Set `conversation`'s activity time to `now`, and its title from `text` when it has none; return the fields set.

    Nothing is written: the caller saves the fields.
    """
    conversation.updated_at = now
    if conversation.title:
        return ["updated_at"]
    conversation.title = title_from_text(text)
    return ["updated_at", "title"]


def _last_shown(conversation: Conversation) -> Message | None:
    """Return the newest shown message of `conversation`, the one a new message follows (one query)."""
    return Message.objects.filter(conversation=conversation, is_current=True).order_by("-created_at", "-id").first()


def _question_create(
    *,
    conversation: Conversation,
    parent_id: int | None,
    text: str,
    idempotency_key: str,
    asked_by: User | None,
    on_question: Callable[[Message], None] | None = None,
) -> SentMessage:
    """Save a question of `text` under message `parent_id` and the empty reply that answers it (two writes).

    `text` must come from `message_text_clean`; both are `asked_by` the given
    user (None: the conversation's owner). `on_question` is called with the
    question once it is written, before the reply is.
    """
    user_message = _question_unsaved(
        conversation=conversation,
        parent_id=parent_id,
        text=text,
        idempotency_key=idempotency_key,
        asked_by=asked_by,
    )
    user_message.save(force_insert=True)
    if on_question is not None:
        on_question(user_message)
    assistant_message = _reply_unsaved(
        conversation=conversation, question=user_message, asked_by_id=user_message.asked_by_id
    )
    assistant_message.save(force_insert=True)
    return SentMessage(user_message=user_message, assistant_message=assistant_message)


def _question_unsaved(
    *, conversation: Conversation, parent_id: int | None, text: str, idempotency_key: str, asked_by: User | None
) -> Message:
    """Return the question of `text` under message `parent_id`, rendered and counted, not written yet.

    `text` must come from `message_text_clean`; `asked_by`: who asks (None: the conversation's owner).
    """
    return Message(
        conversation=conversation,
        parent_id=parent_id,
        role=Message.Role.USER,
        content=text,
        content_html=message_content_html(role=Message.Role.USER, content=text),
        status=Message.Status.COMPLETE,
        idempotency_key=idempotency_key[:64],
        asked_by_id=_asker_id(conversation, asked_by),
        **_persona_content_tokens(conversation, text),
    )


def _refuse_duplicate(conversation: Conversation, idempotency_key: str) -> None:
    """Raise DuplicateSend if a message of `conversation` already has `idempotency_key` (one query; none for "").

    Asked after a refusal or a failed insert only: a send that passes its
    checks meets the key's unique constraint (`message_unique_idempotency_key`).
    """
    key = idempotency_key[:64]
    if key and Message.objects.filter(conversation=conversation, idempotency_key=key).exists():
        raise DuplicateSend(key, conversation)


def content_tokens(text: str, *, model_id: str) -> dict[str, Any]:
    """Return the Message fields recording what `text` costs in a prompt to `model_id` (`llm.tokens.count_tokens`)."""
    return {"content_tokens": count_tokens(text, model_id=model_id), "tokens_counter": counter_name(model_id)}


def _persona_content_tokens(conversation: Conversation, text: str) -> dict[str, Any]:
    if conversation.persona is None:
        return {}
    return content_tokens(text, model_id=upstream.chat_model_for(conversation).model_id)


def _asker_id(conversation: Conversation, asked_by: User | None) -> int:
    """Return the pk of who asks: `asked_by`, else the conversation's owner (no query either way)."""
    return asked_by.pk if asked_by is not None else conversation.owner_id


def _reply_unsaved(*, conversation: Conversation, question: Message, asked_by_id: int | None) -> Message:
    """Return the empty, streaming reply to `question` (written) that a generation will fill, not written yet.

    It is asked for by user `asked_by_id`.
    """
    return Message(
        conversation=conversation,
        parent=question,
        asked_by_id=asked_by_id,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model_id=upstream.chat_model_for(conversation).model_id if conversation.persona else "",
        heartbeat_at=timezone.now(),
    )


def reply_finish(
    *,
    message: Message,
    content: str,
    status: str,
    finish_reason: str = "",
    error_text: str = "",
    model_id: str = "",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    tokens_estimated: bool = False,
    ttft_ms: int | None = None,
    duration_ms: int | None = None,
) -> Message:
    """Store a finished reply with its rendered HTML and upstream metadata, in one write.

    `status` is one of Message.Status other than STREAMING; times in milliseconds;
    `tokens_estimated`: the token counts are the site's estimate, not the upstream's;
    a `completion_tokens` of None is then the content's own count (`content_tokens`).

    Raises:
        Message.DoesNotExist: the conversation was deleted while the reply was written.
    """
    content = storable_text(content)
    cost = content_tokens(content, model_id=model_id or message.model_id)
    if tokens_estimated and completion_tokens is None:
        completion_tokens = cost["content_tokens"]
    fields = {
        "content": content,
        "content_html": message_content_html(role=Message.Role.ASSISTANT, content=content),
        "status": status,
        "finish_reason": finish_reason,
        "error_text": error_text,
        "model_id": model_id or message.model_id,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "tokens_estimated": tokens_estimated,
        **cost,
        "ttft_ms": ttft_ms,
        "duration_ms": duration_ms,
    }
    with transaction.atomic():
        if not Message.objects.filter(pk=message.pk).update(**fields):
            raise Message.DoesNotExist("The conversation was deleted while the reply was written.")
        tokens = (prompt_tokens or 0) + (completion_tokens or 0)
        if tokens and message.asked_by_id is not None:  # Counted for who asked (None: account deleted).
            usage_add(user_id=message.asked_by_id, started_at=message.created_at, tokens=tokens)
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def reply_unstored_start(*, user: User) -> UnstoredReply:
    """Record a reply asked for `user` that will not be stored, so the quotas count it; return the record.

    Call it in the transaction that checked the quota (`quotas.quota_check`
    with `lock`). Deletes the user's records that no longer count: a minute
    old and finished, or a minute old and left by a worker that died. Two writes.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CHAT_STALE_AFTER_S)
    UnstoredReply.objects.filter(user=user, created_at__lt=now - selectors.SEND_WINDOW).filter(
        Q(finished=True) | Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, created_at__lt=stale)
    ).delete()
    return UnstoredReply.objects.create(user=user, heartbeat_at=now)


def reply_unstored_heartbeat(*, reply: UnstoredReply) -> None:
    """Record that the worker generating `reply` is alive (one write), as `replies_checkpoint` does for stored ones."""
    UnstoredReply.objects.filter(pk=reply.pk).update(heartbeat_at=timezone.now())


def reply_unstored_finish(
    *,
    reply: UnstoredReply,
    content: str,
    model_id: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    tokens_estimated: bool,
) -> tuple[int | None, int | None]:
    """Mark a reply that is not stored (the API's `store: false`) finished and add its tokens to its user's day.

    Counts as `reply_finish` does: with `tokens_estimated` and no
    `completion_tokens`, the content's own count; the content itself is not
    kept. Returns the (prompt, completion) tokens counted. Two or three writes.
    """
    if tokens_estimated and completion_tokens is None:
        completion_tokens = count_tokens(content, model_id=model_id)
    tokens = (prompt_tokens or 0) + (completion_tokens or 0)
    with transaction.atomic():
        UnstoredReply.objects.filter(pk=reply.pk).update(finished=True)
        if tokens:
            usage_add(user_id=reply.user_id, started_at=reply.created_at, tokens=tokens)
    return prompt_tokens, completion_tokens


def messages_append(*, conversation: Conversation, turns: list[tuple[str, str]]) -> list[Message]:
    """Append finished messages to the end of `conversation`'s shown path, in order; return them.

    turns: (role, text) pairs, role one of Message.Role, text from
        `message_text_clean` (the API saves the earlier turns a caller sent
        with its question). Each is stored as the site stores its kind
        (`message_content_html`), asked by the conversation's owner, as a
        send would store them.
    One read and one write per message.
    """
    previous = _last_shown(conversation)
    created = []
    for role, text in turns:
        previous = Message.objects.create(
            conversation=conversation,
            parent=previous,
            role=role,
            content=text,
            content_html=message_content_html(role=role, content=text),
            status=Message.Status.COMPLETE,
            asked_by_id=conversation.owner_id,
            **_persona_content_tokens(conversation, text),
        )
        created.append(previous)
    return created


def usage_add(*, user_id: int, started_at: datetime, tokens: int) -> None:
    """Add `tokens` to the user's usage of the local day (settings.TIME_ZONE) of `started_at`.

    One statement, on the day's first reply too. Nothing is added
    for a user deleted meanwhile (the asker of a reply whose IM identity was
    linked to a site account while it streamed: bots).
    """
    _usage_add_day(
        user_id=user_id, day=timezone.localtime(started_at, timezone.get_default_timezone()).date(), tokens=tokens
    )


# Add to the day's row, or create it, in one statement (an upsert: SQLite 3.24+, PostgreSQL 9.5+). A user deleted
# meanwhile selects no row: a row would fail its foreign key at commit, taking the caller's transaction (the stored
# reply) with it. SQL, as the ORM has no increment on conflict: updating, then checking the user and creating the
# row took three queries and a savepoint on a user's first reply of the day, 0.6 ms of a reply's 4.5 ms final write.
_USAGE_ADD_SQL = """
INSERT INTO {usage} ({user}, {day}, {tokens})
SELECT {id}, %s, %s FROM {users} WHERE {id} = %s
ON CONFLICT ({user}, {day}) DO UPDATE SET {tokens} = {usage}.{tokens} + excluded.{tokens}
"""


def _usage_add_day(*, user_id: int, day: date, tokens: int) -> None:
    quote = connection.ops.quote_name
    users = get_user_model()._meta
    sql = _USAGE_ADD_SQL.format(
        usage=quote(DailyUsage._meta.db_table),
        user=quote(DailyUsage._meta.get_field("user").column),
        day=quote("day"),
        tokens=quote("tokens"),
        users=quote(users.db_table),
        id=quote(users.pk.column),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection.ops.adapt_datefield_value(day), tokens, user_id])


def asked_move(*, from_user: User, to_user: User) -> None:
    """Give `to_user` what `from_user` asked: the questions and replies (`Message.asked_by`) and the daily usage.

    For an account about to be deleted whose person now uses another one (an
    IM identity linked to a site account): the quotas and the usage pages
    keep counting what they asked, in group chats too. One update, then one
    to three queries per day of usage.
    """
    with transaction.atomic():
        Message.objects.filter(asked_by=from_user).update(asked_by=to_user)
        for usage in DailyUsage.objects.filter(user=from_user):
            _usage_add_day(user_id=to_user.pk, day=usage.day, tokens=usage.tokens)
        DailyUsage.objects.filter(user=from_user).delete()


def conversation_title_generated_set(*, public_id, title: str) -> str:
    """Store a model-generated title unless the title came from the user; return it as stored, or "" if not.

    The caller shows it in the tabs (`titles.title_generate`, on the event loop): the thread that runs the ORM
    never waits on the channel layer.
    """
    title = title[:200]
    updated = Conversation.objects.filter(
        public_id=public_id, title_source=Conversation.TitleSource.FIRST_MESSAGE
    ).update(title=title, title_source=Conversation.TitleSource.GENERATED)
    return title if updated else ""


def title_changed(*, conversation_id, title: str) -> events.TitleChanged:
    """Return the event showing `title` as the conversation's title in every tab."""
    return {"type": "title.changed", "html": fragments.title_html(conversation_id=conversation_id, title=title)}


def _title_broadcast(*, conversation_id, title: str) -> None:
    events.send_on_commit(
        events.conversation_group(conversation_id), lambda: title_changed(conversation_id=conversation_id, title=title)
    )


def _messages_broadcast(*, conversation: Conversation) -> None:
    """Send the whole shown conversation again to every tab after commit."""
    events.send_on_commit(
        events.conversation_group(conversation.public_id), lambda: _messages_changed(conversation=conversation)
    )


def _messages_changed(*, conversation: Conversation, added: list[Message] | None = None) -> events.MessagesChanged:
    """Return the event showing the bubbles `added`, or else the whole shown conversation again."""
    html: str
    if added is not None:
        html = fragments.messages_added_html(conversation=conversation, messages=added)
    else:
        html = fragments.message_list_html(conversation=conversation)
    return {"type": "messages.changed", "html": html}


def _last_current(conversation: Conversation) -> Message | None:
    return (
        Message.objects.select_for_update(of=("self",))
        .filter(conversation=conversation, is_current=True)
        .select_related("parent")
        .order_by("-created_at", "-id")
        .first()
    )


def _refuse_while_streaming(conversation: Conversation) -> None:
    if replies_streaming_live(conversation=conversation):
        raise ValidationError(_("Wait for the reply to finish, or stop it, first."), code="streaming")


def _hide_subtrees(message_ids: list[int]) -> None:
    """Take messages and everything that follows them off the shown path (one update per level)."""
    while message_ids:
        Message.objects.filter(pk__in=message_ids).update(is_current=False)
        message_ids = list(Message.objects.filter(parent_id__in=message_ids).values_list("pk", flat=True))


def reply_regenerate(*, conversation: Conversation, asked_by: User | None = None) -> Message:
    """Start a new version of the last reply: an empty streaming reply to the same question.

    The old reply stays reachable as an earlier version. The new one is
    `asked_by` the given user (None: the conversation's owner).

    Raises:
        ValidationError: the last message is not a finished reply to a question.
    """
    with transaction.atomic():
        _refuse_while_streaming(conversation)
        last = _last_current(conversation)
        if (
            last is None
            or last.role != Message.Role.ASSISTANT
            or last.parent is None
            or last.parent.role != Message.Role.USER
        ):
            raise ValidationError(_("Only the last reply to a message can be regenerated."), code="not_last_reply")
        _hide_subtrees([last.pk])
        reply = _reply_unsaved(
            conversation=conversation, question=last.parent, asked_by_id=_asker_id(conversation, asked_by)
        )
        reply.save(force_insert=True)
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=reply.created_at)
    return reply


def message_edit(
    *, conversation: Conversation, text: str, idempotency_key: str = "", asked_by: User | None = None
) -> SentMessage:
    """Replace the last question with `text` and start a reply to it; the old question and reply stay as versions.

    `text` must come from `message_text_clean`; `idempotency_key` is stored
    on the new question, and both are `asked_by` the given user (None: the
    conversation's owner), as `message_send` does (checked by `reply_request`).

    Raises:
        ValidationError: the conversation has no question to edit, or a reply is streaming.
        DuplicateSend: `idempotency_key` was already used in this conversation.
    """
    try:
        with transaction.atomic():
            _refuse_while_streaming(conversation)
            last = _last_current(conversation)
            question = last if last is not None and last.role == Message.Role.USER else getattr(last, "parent", None)
            if question is None or question.role != Message.Role.USER:
                raise ValidationError(_("There is no message of yours to edit."), code="no_question")
            _hide_subtrees([question.pk])
            edited = _question_create(
                conversation=conversation,
                parent_id=question.parent_id,
                text=text,
                idempotency_key=idempotency_key,
                asked_by=asked_by,
            )
            Conversation.objects.filter(pk=conversation.pk).update(updated_at=edited.assistant_message.created_at)
    except IntegrityError:
        _refuse_duplicate(conversation, idempotency_key)
        raise
    return edited


def message_version_show(*, message: Message) -> Message:
    """Show `message` instead of its other versions, with the latest of what followed it.

    Raises:
        ValidationError: a reply of the conversation is streaming.
    """
    with transaction.atomic():
        _refuse_while_streaming(message.conversation)
        siblings = Message.objects.filter(
            conversation_id=message.conversation_id, parent_id=message.parent_id, role=message.role
        )
        _hide_subtrees(list(siblings.values_list("pk", flat=True)))
        node: Message | None = message
        while node is not None:
            Message.objects.filter(pk=node.pk).update(is_current=True)
            node = node.children.order_by("-created_at", "-id").first()
        _messages_broadcast(conversation=message.conversation)
    message.is_current = True
    return message


def conversation_rename(*, conversation: Conversation, title: object) -> Conversation:
    """Give `conversation` the title the user typed; no generated title replaces it afterwards.

    Raises:
        ValidationError: the title is not text, is blank, or is longer than
            the title field (200 characters).
    """
    if not isinstance(title, str) or not title.strip():
        raise ValidationError(_("Type a title."), code="empty")
    title = " ".join(storable_text(title).split())  # One line: newlines and tabs would break the sidebar entry.
    limit = Conversation._meta.get_field("title").max_length
    if limit is not None and len(title) > limit:
        raise ValidationError(
            _("The title is %(length)d characters long; the limit is %(limit)d.")
            % {"length": len(title), "limit": limit},
            code="too_long",
        )
    conversation.title = title
    conversation.title_source = Conversation.TitleSource.USER
    conversation.save(update_fields=["title", "title_source"])
    _title_broadcast(conversation_id=conversation.public_id, title=title)
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete `conversation` with all its messages and their versions, and their attachments' files.

    A reply still streaming is stopped, on whichever worker generates it:
    nobody will read it, and the upstream bills every token.
    """
    public_id = conversation.public_id
    with transaction.atomic():
        conversation.delete()  # Its attachments' files go after the commit (attachments.signals).

        def stop() -> events.ReplyStop:
            return {"type": "reply.stop"}

        events.send_on_commit(events.control_group(public_id), stop)


def conversation_set_archived(*, conversation: Conversation, archived: bool) -> Conversation:
    """Archive `conversation` (it leaves the sidebar for the archive page) or bring it back.

    Its activity time stays as it was, so it returns to its place in the list.
    """
    conversation.archived = archived
    conversation.save(update_fields=["archived"])
    return conversation


def replies_checkpoint(*, checkpoints: Sequence[tuple[Message, str]]) -> None:
    """Save streaming replies' text so far and their heartbeat: `checkpoints` are (reply, text), one statement for all.

    A reply that is no longer streaming (finished, stopped or marked interrupted meanwhile) is left as it is.
    The replies streaming in a process check in together (`generation._checkpoint_hop`): one write
    instead of one each.
    """
    now = timezone.now()
    rows = [(message.pk, storable_text(content), now) for message, content in checkpoints]
    with transaction.atomic():  # One commit: in autocommit, SQLite would commit each row of the statement.
        rows_update(Message, ["content", "heartbeat_at"], rows, where={"status": Message.Status.STREAMING})


def replies_streaming_live(*, conversation: Conversation) -> list[Message]:
    """Return `conversation`'s streaming replies, once those whose worker stopped beating are marked interrupted.

    A reply is stale when its heartbeat (or, without one, its creation) is
    older than `settings.CHAT_STALE_AFTER_S`: the worker writing it died.
    Its checkpointed text is kept and rendered. One statement when none
    streams (`selectors.conversation_has_streaming`), else two reads; one write per stale reply.
    """
    if not selectors.conversation_has_streaming(conversation_id=conversation.pk):
        return []
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER_S)
    live = []
    # Unordered: the default order would have SQLite walk the conversation's index instead of the streaming rows.
    for message in Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING).order_by():
        if (message.heartbeat_at or message.created_at) >= cutoff:
            live.append(message)
            continue
        Message.objects.filter(pk=message.pk, status=Message.Status.STREAMING).update(
            status=Message.Status.INTERRUPTED,
            content_html=message_content_html(role=Message.Role.ASSISTANT, content=message.content),
            error_text=_("This reply was interrupted: the server writing it stopped. Send again or regenerate it."),
        )
    return live


REPLY_ACTIONS = ("send", "edit", "regenerate", "continue")


@dataclass(frozen=True)
class RequestedReply:
    """A reply asked for: the job that generates it, and the bubbles every open tab must show first.

    changed: the question and the empty reply (a send), or the whole shown
        conversation (an edit or a regeneration), rendered after the commit.
        The caller sends it to the conversation's group before it starts the
        job, so the bubbles reach the tabs before the reply's first delta,
        and the thread that runs the ORM never waits on the channel layer.
    """

    job: upstream.ReplyJob
    changed: events.MessagesChanged


def reply_request(
    *,
    user: User,
    public_id,
    action: str,
    text: object,
    idempotency_key: str = "",
    attachments: Sequence[str] = (),
    persona: Persona | None = None,
    asked_by: User | None = None,
    on_request: upstream.RequestOpener | None = None,
) -> RequestedReply:
    """Save what `action` writes, in one transaction, and return the reply's job and the bubbles to broadcast.

    action: "send" (a new question), "edit" (replace the last question; the
        old one stays a version), "regenerate" (a new version of the last
        reply; `text` ignored) or "continue" (ask the model to go on after a
        reply cut off by its length limit; `text` ignored).
    Reloads the conversation (an admin may have changed its persona, model or
    provider meanwhile) and takes the user's quota under a row lock, so two
    tabs cannot both pass the last free send, nor start two replies at once in
    one conversation. Nothing stays saved if the quota or the context check
    refuses the question. `attachments`: public ids of the user's uploads for
    a send or an edit. `persona` answers instead of the conversation's own
    (`upstream.upstream_check`). `asked_by`: who asks, when it is not `user`
    (a member of an IM group chat, whose conversation `user` is the group's
    own account of: bots.replies); their quota is checked and charged, and
    the question and the reply record them (`Message.asked_by`). None: `user`.
    `on_request`: called with the reply's upstream config and request as soon
    as they are known, after the question is written and before the reply
    is, for a send or a continue without files that is alone in its batch,
    so that the caller can open the upstream stream while the writes go on
    (`generation.EarlyStream`). The transaction may still fail after it (the
    database refusing a write or the commit): the caller then closes what it
    opened. Many at once: `replies_request`.

    Raises:
        ValidationError: the text, the persona, the quota or the conversation's
            state (a reply still streaming in it) does not allow it (the
            message says why); nothing saved.
        Conversation.DoesNotExist: not the user's conversation, or deleted meanwhile.
        DuplicateSend: the idempotency key was seen before in this
            conversation (checked first: a resent message that was saved is
            never refused); nothing saved.
    """
    outcome = replies_request(
        [
            {
                "user": user,
                "public_id": public_id,
                "action": action,
                "text": text,
                "idempotency_key": idempotency_key,
                "attachments": attachments,
                "persona": persona,
                "asked_by": asked_by,
                "on_request": on_request,
            }
        ]
    )[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def replies_request(requests: Sequence[dict[str, Any]]) -> list[RequestedReply | Exception]:
    """Do `reply_request(**request)` for each of `requests`, in order, in one transaction; return each one's outcome.

    The outcome is the `RequestedReply`, or the exception `reply_request`
    raises (nothing of that request stays saved, and the others go on). The
    conversations are read in one statement, and then what they are checked
    and asked with, one statement per kind (`_read_ahead`), and the
    transaction commits once: a class's sends that queue while the thread
    running the ORM is busy are taken together (the consumer's batch:
    bench/README.md, the sixth round). Within it, a request sees what the
    earlier ones wrote: two sends of one user count toward their quota one
    after the other, a second send to one chat finds the first one's reply
    streaming. The sends that read nothing another request writes
    (`_written_together`) are checked first and written together, one
    statement per kind (`_sends_write`); each other request is written at
    its turn, in a savepoint. Only a request alone in its batch has its `on_request` called:
    the event loop opening each request of a batch while this thread writes
    the next ones delayed every bubble of the batch (bench/README.md, the
    eighth round).

    Raises:
        ValueError: an unknown action (a caller's mistake; nothing is saved).
        DatabaseError: the conversations could not be read, a send written together could not be checked or
            written, or the transaction not committed; nothing is saved.
    """
    unknown = [r["action"] for r in requests if r["action"] not in REPLY_ACTIONS]
    if unknown:
        raise ValueError(f"Unknown reply action {unknown[0]!r}")
    done: dict[int, _Written | Exception] = {}
    with transaction.atomic():
        conversations = selectors.conversations_get_for_users([(r["user"], r["public_id"]) for r in requests])
        ahead = _read_ahead(requests, conversations)
        alone = len(requests) == 1
        together: dict[int, _PreparedSend] = {}
        for i, (request, conversation, known) in enumerate(zip(requests, conversations, ahead, strict=True)):
            if conversation is not None and not alone and _written_together(request, known):
                try:
                    together[i] = _send_prepare(conversation=conversation, known=known, request=request)
                except DatabaseError:  # Outside a savepoint, the transaction is broken (PostgreSQL): the batch fails.
                    raise
                except Exception as exc:  # A refusal, handed to the request's caller as `reply_request` raises it.
                    done[i] = exc
                continue
            # Alone, the request needs no savepoint: when it fails, the transaction rolls back.
            done[i] = _reply_write_in_savepoint(
                conversation=conversation, known=known, request=request, savepoint=not alone
            )
        if together:
            try:
                with transaction.atomic():
                    done.update(_sends_write(together))
            except (IntegrityError, Conversation.DoesNotExist):
                # A key used, or a conversation deleted, meanwhile: each alone, told as `reply_request` does.
                for i in together:
                    done[i] = _reply_write_in_savepoint(
                        conversation=conversations[i], known=ahead[i], request=requests[i], savepoint=True
                    )
    outcomes = [done[i] for i in range(len(requests))]
    return [
        outcome
        if isinstance(outcome, Exception)
        else RequestedReply(job=outcome[1], changed=_messages_changed(conversation=outcome[0], added=outcome[2]))
        for outcome in outcomes
    ]


# A request of `replies_request` written: its conversation, its reply's job and its new bubbles (`_reply_save`).
_Written = tuple[Conversation, upstream.ReplyJob, list[Message] | None]


def _reply_write_in_savepoint(
    *, conversation: Conversation | None, known: "_ReadAhead", request: dict[str, Any], savepoint: bool
) -> _Written | Exception:
    """Return what `_reply_write` returns for `request` of a batch, or the exception it raised, undone."""
    try:
        if conversation is None:
            raise Conversation.DoesNotExist
        with transaction.atomic(savepoint=savepoint):
            return _reply_write(
                conversation=conversation,
                known=known,
                **{**request, "on_request": request.get("on_request") if not savepoint else None},
            )
    except Exception as exc:  # Handed to the request's caller, as `reply_request` raises it.
        return exc


@dataclass(frozen=True)
class _ReadAhead:
    """What one request of a batch is checked and asked with, read for the whole batch before any is written.

    Each field None when it must be read at the request's turn instead: the
    history of a request other than a send or a continue, or of a
    conversation asked for twice in the batch (the second must see what the
    first wrote), the usage of a user who asks twice, whether a conversation
    asked for twice, or by someone other than its owner (an IM group's
    member: the conversation's row lock orders them), has a reply streaming.
    Read ahead, under the askers' row locks, each is what the
    request's turn would read: the requests before it in the batch write
    nothing of another conversation or another user, and what `_reply_check`
    writes first (the sweep of stale replies) changes no message a request is
    built from (the swept replies are not model input, and the newest stays
    the question's parent).
    """

    history: selectors.UpstreamHistory | None = None
    limits: Limits | None = None
    usage: selectors.Usage | None = None
    streaming: bool | None = None
    instructions: str | None = None


def _read_ahead(requests: Sequence[dict[str, Any]], conversations: list[Conversation | None]) -> list[_ReadAhead]:
    """Return what each of `requests` is checked and asked with (`_ReadAhead`), one query per kind for the batch.

    The askers' rows are locked first for their quotas (`quotas.quota_reads`).
    """
    found = [(i, c) for i, c in enumerate(conversations) if c is not None]
    if not found:
        return [_ReadAhead() for _request in requests]
    askers = {i: (requests[i].get("asked_by") or requests[i]["user"]).pk for i, _c in found}
    asks = Counter(askers.values())
    chats = Counter(c.pk for _i, c in found)
    once = [(i, c) for i, c in found if chats[c.pk] == 1]
    limits, usage = quotas.quota_reads(user_ids=list(asks), now=timezone.now(), lock=True)
    streaming = selectors.conversations_streaming(conversation_ids=[c.pk for _i, c in once])
    instructions = custom_instructions_texts(user_ids=[c.owner_id for _i, c in found])
    asked = {
        i: (c, requests[i].get("persona"))
        for i, c in once
        if requests[i]["action"] in ("send", "continue") and (requests[i].get("persona") or c.persona) is not None
    }
    histories = dict(zip(asked, upstream.reply_histories(list(asked.values())), strict=True))
    ahead = [_ReadAhead() for _request in requests]
    for i, c in found:
        ahead[i] = _ReadAhead(
            history=histories.get(i),
            limits=limits[askers[i]],
            usage=usage[askers[i]] if asks[askers[i]] == 1 else None,
            # A member of a group chat is checked after the conversation's row lock (`_reply_check`).
            streaming=(c.pk in streaming) if chats[c.pk] == 1 and askers[i] == c.owner_id else None,
            instructions=instructions[c.owner_id],
        )
    return ahead


def _reply_write(
    *,
    conversation: Conversation,
    known: _ReadAhead,
    user: User,
    public_id,
    action: str,
    text: object,
    idempotency_key: str = "",
    attachments: Sequence[str] = (),
    persona: Persona | None = None,
    asked_by: User | None = None,
    on_request: upstream.RequestOpener | None = None,
) -> tuple[Conversation, upstream.ReplyJob, list[Message] | None]:
    """Check and save one request of `replies_request` in `conversation`, its conversation read for it.

    Return the conversation, the reply's job and the new bubbles (`_reply_save`). `known`: what was
    read ahead for it with the batch's (`_read_ahead`); what it leaves None is read here.

    Raises:
        What `reply_request` raises.
    """
    key = idempotency_key[:64] if action != "regenerate" else ""
    asker = asked_by or user
    clean = _reply_checked(
        conversation=conversation, action=action, text=text, persona=persona, asker=asker, known=known, key=key
    )
    job, added = _reply_save(
        user=user,
        conversation=conversation,
        action=action,
        clean=clean,
        key=key,
        attachments=attachments,
        asker=asker,
        persona=persona,
        known=known,
        on_request=on_request,
    )
    return conversation, job, added


def _reply_checked(
    *,
    conversation: Conversation,
    action: str,
    text: object,
    persona: Persona | None,
    asker: User,
    known: _ReadAhead,
    key: str,
) -> str:
    """Return what `_reply_check` returns; a refused message whose idempotency key `key` was used is a duplicate.

    Raises:
        DuplicateSend: a message resent (after a reconnect) while its reply streams, or once it is written.
        ValidationError: what `_reply_check` raises.
    """
    try:
        return _reply_check(
            conversation=conversation, action=action, text=text, persona=persona, asker=asker, known=known
        )
    except ValidationError:
        _refuse_duplicate(conversation, key)
        raise


def _written_together(request: dict[str, Any], known: _ReadAhead) -> bool:
    """Whether `request` of a batch is a send written with the batch's other such sends (`_sends_write`).

    So is a send without files whose checks write nothing and read nothing
    another request of the batch writes: its history, its asker's usage and
    whether its conversation has a reply streaming were read ahead (a
    conversation asked for once in the batch, by its owner, who asks once).
    The database must give back the keys of rows inserted together.
    """
    return (
        request["action"] == "send"
        and not request.get("attachments")
        and known.history is not None
        and known.usage is not None
        and known.streaming is False
        and connection.features.can_return_rows_from_bulk_insert
    )


@dataclass(frozen=True)
class _PreparedSend:
    """A send of a batch, checked, with its question and its reply's job built, nothing of it written yet."""

    conversation: Conversation
    question: Message
    job: upstream.ReplyJob


def _send_prepare(*, conversation: Conversation, known: _ReadAhead, request: dict[str, Any]) -> _PreparedSend:
    """Check a send of `replies_request` that `_written_together` allows, and build its question and job.

    Nothing is written, nor read but what the checks read: the question (rendered and counted) and the job
    (its reply unset) are built from the history read ahead.

    Raises:
        What `reply_request` raises for a send, but DuplicateSend for a send that passes its checks with a key
        used already: its insert meets the key's unique constraint (`_sends_write`).
    """
    assert known.history is not None, "read ahead for a send written together (`_written_together`)"
    key = (request.get("idempotency_key") or "")[:64]
    asker = request.get("asked_by") or request["user"]
    persona = request.get("persona")
    clean = _reply_checked(
        conversation=conversation,
        action="send",
        text=request["text"],
        persona=persona,
        asker=asker,
        known=known,
        key=key,
    )
    last = known.history.last
    question = _question_unsaved(
        conversation=conversation,
        parent_id=last.pk if last is not None else None,
        text=clean,
        idempotency_key=key,
        asked_by=asker,
    )
    job = _question_job(
        conversation=conversation,
        persona=persona,
        instructions=known.instructions,
        history=known.history,
        question=question,
    )
    return _PreparedSend(conversation=conversation, question=question, job=job)


def _question_job(
    *,
    conversation: Conversation,
    persona: Persona | None,
    instructions: str | None,
    history: selectors.UpstreamHistory,
    question: Message,
) -> upstream.ReplyJob:
    """Return the job of the reply to `question`, a send without files, before that reply exists.

    `history`: the conversation's, read before `question` (which may not be written yet); the job's message
    is None, for the caller to set (`dataclasses.replace`) once the reply is written.

    Raises:
        ValidationError: the question alone does not fit the context window.
    """
    _no_attachments_known(question)
    return upstream.reply_job_build(
        conversation=conversation,
        persona=persona,
        instructions=instructions,
        message=None,
        history=history.with_message(question),
    )


# `_messages_insert(messages)`: `Message.objects.bulk_create(messages)`, its SQL compiled once per number of rows.
_messages_insert = InsertMany(Message)


def _sends_write(prepared: dict[int, _PreparedSend]) -> dict[int, _Written]:
    """Write the sends `prepared` for a batch by their index in it, one statement per kind for them all.

    Their questions in one insert, their replies in another (each compiled once per number of rows:
    `compiled.InsertMany`), and their conversations' activity times
    and titles (`_conversation_asked`) in a prepared update or two: a batch of 32 sends ran 0.41 statements a
    send instead of 7.25, each send's three writes in a savepoint having taken 44 % of its CPU
    (bench/README.md, the tenth round). Return what each request of them writes (`_reply_write`).

    Raises:
        IntegrityError: a question's idempotency key was used meanwhile.
        Conversation.DoesNotExist: a conversation was deleted meanwhile (PostgreSQL: read without a lock).
        Either way, call it in a savepoint: what it wrote is to be undone.
    """
    sends = list(prepared.values())
    questions = _messages_insert([send.question for send in sends])
    replies = _messages_insert(
        [
            _reply_unsaved(conversation=send.conversation, question=question, asked_by_id=question.asked_by_id)
            for send, question in zip(sends, questions, strict=True)
        ]
    )
    now = timezone.now()
    named: list[Conversation] = []  # Given their title now; a title already there is not written again, as
    touched: list[Conversation] = []  # another tab may rename the chat meanwhile (PostgreSQL).
    for send in sends:
        fields = _conversation_asked(send.conversation, text=send.question.content, now=now)
        (named if "title" in fields else touched).append(send.conversation)
    updated = rows_update(Conversation, ["updated_at", "title"], [(c.pk, now, c.title) for c in named])
    updated += rows_update(Conversation, ["updated_at"], [(c.pk, now) for c in touched])
    if updated != len(sends):
        raise Conversation.DoesNotExist("A conversation was deleted while its send was written.")
    return {
        i: (send.conversation, replace(send.job, message=reply), [question, reply])
        for (i, send), question, reply in zip(prepared.items(), questions, replies, strict=True)
    }


def _reply_check(
    *,
    conversation: Conversation,
    action: str,
    text: object,
    persona: Persona | None,
    asker: User,
    known: _ReadAhead = _ReadAhead(),
) -> str:
    """Return the cleaned text of a send or an edit ("" otherwise) if `asker` may ask for the reply now.

    See `reply_request`, whose transaction it runs in; writes nothing but the
    stale replies' sweep (`replies_streaming_live`). `known`: the quota's
    reads and whether a reply streams, when read ahead (`_read_ahead`).

    Raises:
        ValidationError: the text, the persona, the quota, or a reply streaming in the conversation refuses it.
    """
    clean = message_text_clean(text=text) if action in ("send", "edit") else ""
    upstream.upstream_check(conversation=conversation, persona=persona)
    if asker.pk != conversation.owner_id and connection.features.has_select_for_update:
        # Members of a group chat each lock their own row for their quota; the conversation's row keeps two of
        # them from both passing the check below. (SQLite's IMMEDIATE transactions already serialize writers.)
        list(Conversation.objects.select_for_update().filter(pk=conversation.pk).values_list("pk"))
    quotas.quota_check(user=asker, lock=True, limits=known.limits, usage=known.usage)
    # After the quota's row lock: two sends of one user are checked one after the other.
    if known.streaming is not False:
        _refuse_while_streaming(conversation)
    if action == "continue":
        _refuse_unless_cut_off(conversation)
    return clean


def _reply_save(
    *,
    user: User,
    conversation: Conversation,
    action: str,
    clean: str,
    key: str,
    asker: User,
    persona: Persona | None,
    attachments: Sequence[str] = (),
    known: _ReadAhead = _ReadAhead(),
    on_request: upstream.RequestOpener | None = None,
) -> tuple[upstream.ReplyJob, list[Message] | None]:
    """Save what `action` writes, once `_reply_check` allowed it (see `reply_request`, whose transaction it runs in).

    Return the reply's job, and the new bubbles of a send or a continue
    (None: the shown conversation changed as a whole). The job of those is
    built from the history the reply of `persona` sees, with the question
    (`upstream.reply_history`: read before the question is written, it gives
    the message the question follows, and the reply's request needs no second
    read), `known.history` when it was read ahead (`_read_ahead`). Without
    files, it is built once the question is written, and its request handed
    to `on_request` before the reply is written.

    Raises:
        DuplicateSend: the idempotency key `key` was used in the conversation meanwhile.
        ValidationError: an attachment is refused (`_attach`), or the question alone does not fit the context window.
    """
    build = partial(
        upstream.reply_job_build, conversation=conversation, persona=persona, instructions=known.instructions
    )
    if action == "edit":
        edited = message_edit(conversation=conversation, text=clean, idempotency_key=key, asked_by=asker)
        _edited_keeps_files(edited.user_message)
        _attach(user=user, conversation=conversation, public_ids=attachments, message=edited.user_message)
        return build(message=edited.assistant_message), None
    if action == "regenerate":
        return build(message=reply_regenerate(conversation=conversation, asked_by=asker)), None
    if action == "continue":
        clean = _("Continue from where you stopped.")
    history = known.history
    if history is None:
        history = upstream.reply_history(conversation=conversation, persona=persona)
    opened: list[upstream.ReplyJob] = []

    def question_written(question: Message) -> None:
        assert on_request is not None and history is not None  # for the type checker: given only then, read above
        job = _question_job(
            conversation=conversation,
            persona=persona,
            instructions=known.instructions,
            history=history,
            question=question,
        )
        on_request(job.config, job.request)
        opened.append(job)

    sent = message_send(
        conversation=conversation,
        text=clean,
        idempotency_key=key,
        asked_by=asker,
        history=history,
        on_question=question_written if on_request is not None and not attachments else None,
    )
    added = [sent.user_message, sent.assistant_message]
    if opened:
        return replace(opened[0], message=sent.assistant_message), added
    if not _attach(user=user, conversation=conversation, public_ids=attachments, message=sent.user_message):
        _no_attachments_known(sent.user_message)
    return build(message=sent.assistant_message, history=history.with_message(sent.user_message)), added


def _refuse_unless_cut_off(conversation: Conversation) -> None:
    last = _last_current(conversation)
    if last is None or last.role != Message.Role.ASSISTANT or last.finish_reason != "length":
        raise ValidationError(_("Only a reply cut off by its length limit can be continued."), code="not_cut_off")


@dataclass(frozen=True)
class StartedConversation:
    """A conversation created with its first message, and the job that generates the reply to it."""

    conversation: Conversation
    job: upstream.ReplyJob


# How long a first message's idempotency key is looked for in the user's other conversations.
FIRST_SEND_DEDUP_WINDOW = timedelta(minutes=10)


def conversation_start(
    *, user: User, persona: Persona, text: object, idempotency_key: str = "", attachments: Sequence[str] = ()
) -> StartedConversation:
    """Create a conversation with `persona` and its first message, in one transaction; return it and the reply's job.

    A chat exists only once its first message is accepted: the greeting, the
    question and the empty reply are saved together, after the same checks as
    any send (`reply_request`), or nothing is.

    Raises:
        ValidationError: the text, the persona or the quota does not allow it; nothing saved.
        DuplicateSend: a first message with `idempotency_key` started a conversation of
            `user` in the last FIRST_SEND_DEDUP_WINDOW (a double submit); its `conversation` is that one.
    """
    key = idempotency_key[:64]
    with transaction.atomic():
        if key:
            earlier = (
                Message.objects.filter(
                    conversation__owner=user,
                    idempotency_key=key,
                    created_at__gte=timezone.now() - FIRST_SEND_DEDUP_WINDOW,
                )
                .select_related("conversation")
                .first()
            )
            if earlier is not None:
                raise DuplicateSend(key, earlier.conversation)
        message_text_clean(text=text)  # Before anything is created.
        conversation = conversation_create(owner=user, persona=persona)
        clean = _reply_check(conversation=conversation, action="send", text=text, persona=None, asker=user)
        job, _added = _reply_save(
            user=user,
            conversation=conversation,
            action="send",
            clean=clean,
            key=key,
            asker=user,
            persona=None,
            attachments=attachments,
        )
    return StartedConversation(conversation=conversation, job=job)


def conversation_persona_set(*, conversation: Conversation, persona: Persona) -> Conversation:
    """Continue `conversation` with `persona` (one of the active personas): for a chat whose persona is gone.

    An imported chat, or one whose persona or model an admin removed, refuses
    new messages until it has a persona it can reach. The history stays as
    it is; the next reply is asked with the new persona's system prompt and model.
    """
    conversation.persona = persona
    conversation.chat_model = None  # The models a chat may switch to are its persona's.
    conversation.save(update_fields=["persona", "chat_model"])
    return conversation


def _edited_keeps_files(question: Message) -> None:
    """Give an edited question the files of the version it replaces (the composer does not show them)."""
    replaced = (
        Message.objects.filter(
            conversation_id=question.conversation_id, parent_id=question.parent_id, role=question.role
        )
        .exclude(pk=question.pk)
        .order_by("-created_at", "-id")
        .first()
    )
    if replaced is not None:
        attachments_copy(from_message_id=replaced.pk, to_message_id=question.pk)


def _attach(*, user: User, conversation: Conversation, public_ids: Sequence[str], message: Message) -> list[Attachment]:
    """Attach the user's uploads to `message`; refuse images when the chat's model does not read them.

    Return them (none without `public_ids`).

    Raises:
        ValidationError: an upload is gone or not the user's, too many files,
            or an image for a model without vision (the transaction rolls back).
    """
    if not public_ids:
        return []
    attached = attachments_attach(owner=user, public_ids=public_ids, message_id=message.pk)
    model = upstream.chat_model_for(conversation)
    if any(a.kind == Attachment.Kind.IMAGE for a in attached) and not model.supports_images:
        raise ValidationError(
            _("%(model)s does not accept images. Switch to a model that does, or remove the image.") % {"model": model},
            code="no_vision",
        )
    return attached


def _no_attachments_known(message: Message) -> None:
    """Record that `message`, just written, has no files, where `prefetch_related` keeps what it loaded.

    Its bubble and its reply's request then read no files. Set by hand, as
    `prefetch_related` leaves a relation it loaded (a queryset with its
    results in place): an empty `Prefetch` (`prefetch_related_objects`) cost
    0.4 ms of a send's CPU, building a query it never ran (bench/README.md,
    the fifth round); a bare `none()` still built its SQL compiler, 0.2 ms,
    to find out it was empty the first time it was read (the seventh round).
    """
    files = Attachment.objects.none()
    files._result_cache = []
    cache = message.__dict__.setdefault("_prefetched_objects_cache", {})
    cache[Message.attachments.field.remote_field.cache_name] = files


def conversation_set_model(*, conversation: Conversation, chat_model_id: object) -> Conversation:
    """Switch `conversation` to another model its persona allows (`chat_model_list_for_persona`).

    Later replies use it; earlier replies keep the model they were written by.

    Raises:
        ValidationError: no persona, or the model is not among those offered for the chat.
    """
    persona = conversation.persona
    if persona is None:
        raise ValidationError(_("This chat's persona is no longer available. Start a new chat."))
    allowed = {str(m.pk): m for m in chat_model_list_for_persona(persona=persona) if m.enabled}
    chosen: ChatModel | None = allowed.get(str(chat_model_id))
    if chosen is None:
        raise ValidationError(_("That model is not offered for this chat. Pick another one."), code="not_allowed")
    conversation.chat_model = None if chosen.pk == persona.model_id else chosen
    conversation.save(update_fields=["chat_model"])
    return conversation


def conversation_set_temperature(*, conversation: Conversation, temperature: object) -> Conversation:
    """Set the temperature later replies in `conversation` are asked with; "" or None goes back to the persona's.

    `temperature`: a number from 0 to 2 (the OpenAI API's range), or its text as a form posts it.

    Raises:
        ValidationError: not a number, or outside 0-2.
    """
    value: float | None
    if temperature is None or (isinstance(temperature, str) and not temperature.strip()):
        value = None
    else:
        try:
            value = float(str(temperature).strip().replace(",", "."))
        except ValueError:
            value = -1.0
        if not 0 <= value <= 2:  # NaN fails too
            raise ValidationError(
                _("The temperature is a number from 0 to 2; leave it empty for the persona's."), code="temperature"
            )
    conversation.temperature = value
    conversation.save(update_fields=["temperature"])
    return conversation


def replies_rerender(*, batch_size: int = 500) -> int:
    """Render every stored message again with today's renderer (`message_content_html`); return how many changed.

    Stored HTML stays as it was rendered (`content_html`), so after an
    upgrade that renders differently (math as MathML in replies and in
    user messages, task lists, table alignment) older messages keep their
    old look until this runs (`manage.py rerender_replies`). Replies still
    streaming are left to finish. Reads and writes `batch_size` messages at
    a time, each batch in its own transaction, in primary key order; cost is
    about 2 ms per KB of reply (bench/render.py).
    """
    changed = 0
    stored = (
        Message.objects.exclude(status=Message.Status.STREAMING)
        .exclude(content="")
        .only("id", "role", "content", "content_html")
        .order_by("id")
    )
    last_id = 0
    while batch := list(stored.filter(id__gt=last_id)[:batch_size]):
        last_id = batch[-1].id
        updates = []
        for message in batch:
            html = message_content_html(role=message.role, content=message.content)
            if html != message.content_html:
                message.content_html = html
                updates.append(message)
        with transaction.atomic():
            Message.objects.bulk_update(updates, ["content_html"])
        changed += len(updates)
    return changed
