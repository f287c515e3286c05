"""Generate a reply: stream it from the upstream to every open tab, then store it once.

The generation belongs to the conversation, not to a socket: `start_reply`
runs it as its own asyncio task, so closing the tab that sent the message does
not cancel it. Deltas go to the conversation's channel layer group; the first
at once, later ones coalesced over `settings.CHAT_COALESCE_MS`. The database is
written once, when the reply ends (`services.reply_finish`); the final event
carries the whole rendered bubble, so a tab that missed deltas still ends right.

A running generator listens on the conversation's control group for
`reply.stop` (from any tab, on any worker) and `reply.sync` (a tab that joined
mid-reply asks for the text so far). See `events.py` for the protocol.
"""

import asyncio
import logging
from dataclasses import dataclass
from uuid import UUID

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from conversations.quotas import quota_status
from conversations import bubbles, context, events, llm, selectors, services, titles
from conversations.models import Conversation, Message
from personas.crypto import DecryptionError
from personas.selectors import provider_upstream_config

logger = logging.getLogger(__name__)

# Strong references to running generations: the event loop keeps only weak
# ones. Process-local bookkeeping, not shared state: stop and sync go through
# the channel layer, so any worker can reach any generation.
_running: set[asyncio.Task] = set()


@dataclass(frozen=True)
class ReplyJob:
    """Everything a generation needs, loaded before it starts (no ORM reads while streaming)."""

    conversation_id: UUID
    message: Message
    config: llm.UpstreamConfig
    request: llm.ChatRequest
    # The first user message, when a title should be generated after this reply.
    title_from: str = ""


def upstream_check(*, conversation: Conversation) -> None:
    """Check that `conversation` can get a reply now, before anything is saved.

    Raises:
        ValidationError: its persona was deleted or deactivated, its model was
            disabled, or its provider's key cannot be decrypted, with a message
            for the person chatting.
    """
    persona = conversation.persona
    if persona is None or not persona.is_active:
        raise ValidationError(_("This chat's persona is no longer available. Start a new chat."))
    if not persona.model.enabled:
        raise ValidationError(_("This chat's model has been disabled by an admin. Start a new chat."))
    try:
        persona.model.provider.api_key
    except DecryptionError:
        raise ValidationError(
            _("The provider's API key cannot be read with the current secret key. An admin must enter it again.")
        ) from None


def reply_job_build(*, conversation: Conversation, message: Message) -> ReplyJob:
    """Assemble the upstream request for `message`, the empty reply that `message_send` created.

    The request is what `context.select_context` keeps: the persona's system
    prompt, the greeting, and as many of the latest messages (ending with the
    new question) as fit both the persona's history limit and the model's
    context window less the reply's max_tokens; with the persona's
    temperature, top_p and max_tokens. Call `upstream_check` first.

    Raises:
        ValidationError: the new question alone does not fit the context window.
    """
    persona = conversation.persona
    model = persona.model
    upstream = _select(conversation=conversation, next_message=None)
    question = upstream.history.recent[-1]
    wants_title = conversation.title_source == Conversation.TitleSource.FIRST_MESSAGE and (
        selectors.message_is_only_question(message=question)
    )
    return ReplyJob(
        conversation_id=conversation.public_id,
        message=message,
        title_from=question.content if wants_title else "",
        config=provider_upstream_config(provider=model.provider),
        request=llm.ChatRequest(
            model=model.model_id,
            messages=upstream.context.messages,
            temperature=persona.temperature,
            top_p=persona.top_p,
            max_tokens=persona.max_tokens or model.max_output_tokens,
        ),
    )


@dataclass(frozen=True)
class ContextBudget:
    """What the next message would carry: `kept` of `total` earlier messages, about `tokens` of `budget`."""

    kept: int
    total: int
    tokens: int
    budget: int | None
    exact: bool


def context_budget(*, conversation: Conversation) -> ContextBudget | None:
    """Return the context the next message would be sent with (shown under the composer), or None without a persona."""
    if conversation.persona is None:
        return None
    try:
        upstream = _select(conversation=conversation, next_message="")
    except ValidationError:  # The persona alone fills the window; the send will say so.
        return None
    return ContextBudget(
        kept=upstream.context.kept_count - 1,
        total=upstream.history.total,
        tokens=upstream.context.tokens,
        budget=upstream.context.budget,
        exact=upstream.context.exact,
    )


@dataclass(frozen=True)
class _Upstream:
    history: selectors.UpstreamHistory
    context: context.UpstreamContext


def _select(*, conversation: Conversation, next_message: str | None) -> _Upstream:
    """Select the context for the saved history, plus `next_message` when it is not saved yet.

    Raises:
        ValidationError: the newest message alone does not fit the context window.
    """
    persona = conversation.persona
    model = persona.model
    limit = max(persona.history_limit, 1)
    history = selectors.message_history_for_upstream(conversation=conversation, limit=limit)
    items = [(m.role, m.content) for m in history.recent]
    if next_message is not None:
        items.append((Message.Role.USER, next_message))
    try:
        selected = context.select_context(
            system_prompt=persona.system_prompt,
            greeting=history.greeting.content if history.greeting else None,
            history=items,
            history_limit=limit,
            context_window=model.context_window,
            max_tokens=persona.max_tokens or model.max_output_tokens,
            model_id=model.model_id,
        )
    except context.ContextTooLarge as exc:
        raise ValidationError(str(exc), code="context_too_large") from None
    return _Upstream(history=history, context=selected)


def start_reply(job: ReplyJob) -> asyncio.Task:
    """Start generating `job` in its own task on the running loop; return the task."""
    task = asyncio.get_running_loop().create_task(ReplyGenerator(job).run())
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


class ReplyGenerator:
    """One reply's generation: upstream stream in, coalesced deltas out, one final write."""

    def __init__(self, job: ReplyJob) -> None:
        self.job = job
        self.layer = get_channel_layer()
        self.group = events.conversation_group(job.conversation_id)
        self.message_id = str(job.message.public_id)
        self.window_s = settings.CHAT_COALESCE_MS / 1000
        self.sent: list[str] = []  # text of deltas 1..seq, already sent
        self.pending: list[str] = []  # text received, not yet sent
        self.seq = 0
        self.send_lock = asyncio.Lock()
        self.flush_task: asyncio.Task | None = None
        self.stopped = False
        self.received_chars = 0
        self.started = 0.0
        self.ttft_ms: int | None = None

    async def run(self) -> None:
        """Generate, then store and broadcast the result; never raises (errors become the reply)."""
        control_channel = await self.layer.new_channel()
        control_group = events.control_group(self.job.conversation_id)
        await self.layer.group_add(control_group, control_channel)
        consume = asyncio.create_task(self._consume())
        listener = asyncio.create_task(self._listen(control_channel, consume))
        checkpoints = asyncio.create_task(self._checkpoints())
        try:
            result = await consume
        except asyncio.CancelledError:
            if not self.stopped:
                raise
            result = _Outcome(status=Message.Status.STOPPED, ttft_ms=self.ttft_ms, duration_ms=self._elapsed_ms())
        finally:
            listener.cancel()
            checkpoints.cancel()
            await self.layer.group_discard(control_group, control_channel)
        await self._flush_now()
        content = await self._finish(result)
        if self.job.title_from and result.status == Message.Status.COMPLETE and content:
            await titles.title_generate(
                config=self.job.config,
                conversation_id=self.job.conversation_id,
                model_id=self.job.request.model,
                user_text=self.job.title_from,
                reply_text=content,
            )

    def _elapsed_ms(self) -> int:
        return round((asyncio.get_running_loop().time() - self.started) * 1000)

    async def _consume(self) -> "_Outcome":
        self.started = asyncio.get_running_loop().time()
        for attempt in range(settings.CHAT_UPSTREAM_RETRIES + 1):
            try:
                async for event in llm.stream_chat(self.job.config, self.job.request):
                    if isinstance(event, llm.Finish):
                        return _Outcome(
                            status=Message.Status.COMPLETE,
                            finish=event,
                            ttft_ms=self.ttft_ms,
                            duration_ms=self._elapsed_ms(),
                        )
                    if self.ttft_ms is None:
                        self.ttft_ms = self._elapsed_ms()
                    await self._on_delta(event.text)
            except llm.LLMError as exc:
                wait_s = _retry_wait_s(exc, attempt=attempt, text_shown=self.ttft_ms is not None)
                if wait_s is None:
                    return _Outcome(
                        status=Message.Status.ERROR, error=exc, ttft_ms=self.ttft_ms, duration_ms=self._elapsed_ms()
                    )
                logger.info("Retrying reply %s in %.1f s after %s", self.message_id, wait_s, exc.kind)
                await asyncio.sleep(wait_s)
        raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover

    async def _checkpoints(self) -> None:
        """Save the text so far every CHAT_CHECKPOINT_S while it grows, else a heartbeat every CHAT_HEARTBEAT_S.

        Writes are per interval, never per delta; a crash loses at most one
        interval of text, and the heartbeat tells a dead worker from a slow model.
        """
        loop = asyncio.get_running_loop()
        saved_chars = 0
        saved_at = loop.time()
        while True:
            await asyncio.sleep(settings.CHAT_CHECKPOINT_S)
            chars = self.received_chars
            if chars == saved_chars and loop.time() - saved_at < settings.CHAT_HEARTBEAT_S:
                continue
            content = "".join(self.sent) + "".join(self.pending)
            try:
                await database_sync_to_async(services.reply_checkpoint)(message=self.job.message, content=content)
            except Exception:  # A failed checkpoint must not end the reply; the final write still comes.
                logger.warning("Checkpoint of reply %s failed", self.message_id, exc_info=True)
            saved_chars, saved_at = chars, loop.time()

    async def _on_delta(self, text: str) -> None:
        self.received_chars += len(text)
        self.pending.append(text)
        if self.seq == 0:
            await self._flush_now()  # The first delta goes out at once.
        elif self.flush_task is None:
            self.flush_task = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.window_s)
        self.flush_task = None
        await self._flush_now()

    async def _flush_now(self) -> None:
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        # seq and sent change together, before any await, so a snapshot is consistent.
        self.seq += 1
        self.sent.append(text)
        event: events.ReplyDelta = {"type": "reply.delta", "message_id": self.message_id, "seq": self.seq, "text": text}
        async with self.send_lock:  # Keep deltas in seq order on the wire.
            await self.layer.group_send(self.group, event)

    async def _listen(self, channel: str, consume: asyncio.Task) -> None:
        while True:
            event = await self.layer.receive(channel)
            if event.get("type") == "reply.stop":
                self.stopped = True
                consume.cancel()  # Closes the upstream HTTP response.
            elif event.get("type") == "reply.sync" and isinstance(event.get("reply_channel"), str):
                snapshot: events.ReplySnapshot = {
                    "type": "reply.snapshot",
                    "message_id": self.message_id,
                    "seq": self.seq,
                    "text": "".join(self.sent),
                }
                await self.layer.send(event["reply_channel"], snapshot)

    async def _finish(self, outcome: "_Outcome") -> str:
        """Store the reply once and send its final bubble to every tab; return its text."""
        if self.flush_task is not None:
            self.flush_task.cancel()
        content = "".join(self.sent) + "".join(self.pending)
        finish = outcome.finish
        try:
            html = await database_sync_to_async(_store)(
                message=self.job.message,
                content=content,
                status=outcome.status,
                finish_reason=finish.finish_reason if finish else "",
                error_text=outcome.error.message if outcome.error else "",
                model_id=finish.model if finish else "",
                prompt_tokens=finish.prompt_tokens if finish else None,
                completion_tokens=finish.completion_tokens if finish else None,
                ttft_ms=outcome.ttft_ms,
                duration_ms=outcome.duration_ms,
            )
        except Message.DoesNotExist:
            logger.info("Reply %s dropped: its conversation was deleted", self.message_id)
            return ""
        except Exception:
            # The generation task has no caller to raise to; log it and leave the bubble as it is.
            logger.exception("Could not store reply %s", self.message_id)
            return ""
        final: events.ReplyFinal = {"type": "reply.final", "message_id": self.message_id, "html": html}
        await self.layer.group_send(self.group, final)
        return content


def _retry_wait_s(error: llm.LLMError, *, attempt: int, text_shown: bool) -> float | None:
    """Return how long to wait before trying the upstream again, or None to give up.

    Only a 429 (not "out of quota") or a 5xx answered before any text was
    shown is retried: a retry after text would show it twice. The wait is the
    upstream's Retry-After when given (RFC 9110 §10.2.3), else exponential
    backoff from 0.5 s; a Retry-After above CHAT_UPSTREAM_RETRY_MAX_WAIT_S
    fails at once, with the upstream's own advice in the message.
    """
    retryable = error.kind == llm.ErrorKind.RATE_LIMITED or (
        error.kind == llm.ErrorKind.UNAVAILABLE and error.status is not None
    )
    if text_shown or not retryable or attempt >= settings.CHAT_UPSTREAM_RETRIES:
        return None
    wait_s = error.retry_after_s if error.retry_after_s is not None else 0.5 * 2**attempt
    return wait_s if wait_s <= settings.CHAT_UPSTREAM_RETRY_MAX_WAIT_S else None


def _store(*, message: Message, **fields) -> str:
    """Store the finished reply (one write); return its bubble, replacing the streaming one, the new context budget and quota."""
    message = services.reply_finish(message=message, **fields)
    conversation = message.conversation
    status = render_to_string(
        "conversations/partials/composer_status.html",
        {
            "context_budget": context_budget(conversation=conversation),
            "quota": quota_status(user=conversation.owner),
            "oob": True,
        },
    )
    return bubbles.bubble_html(conversation=conversation, message=message, oob=True) + status


@dataclass(frozen=True)
class _Outcome:
    status: str
    finish: llm.Finish | None = None
    error: llm.LLMError | None = None
    ttft_ms: int | None = None
    duration_ms: int | None = None
