"""Generate a reply: stream it from the upstream to every open tab, checkpoint it, store it when it ends.

The generation belongs to the conversation, not to a socket: `start_reply`
runs it as its own asyncio task, so closing the tab that sent the message does
not cancel it. Deltas go to the conversation's channel layer group, batched by
`coalescing.DeltaCoalescer` (the first at once, later ones over
`settings.CHAT_COALESCE_MS`), and the upstream is read once a window, not
once a chunk (`llm.stream_chat`'s `pace_s`). While it streams, the text so
far is saved every `CHAT_CHECKPOINT_S` (a heartbeat every `CHAT_HEARTBEAT_S`
when nothing new came); when it ends it is stored and rendered once
(`services.reply_finish`), and the final event carries the whole bubble, so
a tab that missed deltas still ends right.

A running generator listens on the conversation's control group for
`reply.stop` (from any tab, on any worker) and `reply.sync` (a tab that joined
mid-reply asks for the text so far). See `events.py` for the protocol.

A caller in the same process may also listen to one generation directly (the
API, `api.chat`): it passes a queue that gets every upstream delta as it
arrives, uncoalesced, then one `ReplyEnd`, and may `stop()` the generation. A
job without a message (the API's `store: false`) writes nothing but the
reply's usage, and sends nothing to the channel layer.
"""

import asyncio
import collections
import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import translation

import llm
from conversations import coalescing, events, fragments, services, titles
from conversations.batching import Hop, HopBatcher
from conversations.models import Message
from conversations.upstream import ReplyJob

logger = logging.getLogger(__name__)

# Strong references to running generations: the event loop keeps only weak
# ones. Process-local bookkeeping, not shared state: stop and sync go through
# the channel layer, so any worker can reach any generation.
_running: set[asyncio.Task] = set()
# The generations reading their upstream now: the coalescing window widens with their number (`coalescing.window_s`).
_streaming: set["ReplyGenerator"] = set()
# Who waits for a reply's upstream request to be handed over (`requests_handed_over`), by the reply's public id.
_handover_waiters: dict[str, asyncio.Future[None]] = {}
# The turn of the generation that asked last to open its upstream stream (`_opening_turn`).
_last_opening: asyncio.Future[None] | None = None
# How long a generation waits for the one before it to hand its request over: a build takes about 1 ms.
OPENING_TURN_WAIT_MAX_S = 0.1


def start_detached(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
    """Run `coroutine` in a task of its own on the running loop, from a context of its own; return the task.

    Work started by an HTTP request (a reply, a bot's answer) outlives it, and
    the request's context holds asgiref's thread-sensitive executor, which
    ends with the response: the task starts from an empty context, with only
    the caller's language active. A strong reference is kept until it ends
    (the event loop keeps only weak ones).
    """
    context = contextvars.Context()
    language = translation.get_language()
    if language:
        context.run(translation.activate, language)
    task = asyncio.get_running_loop().create_task(coroutine, context=context)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


@dataclass(frozen=True)
class ReplyEnd:
    """How a reply ended, the last item a listener gets.

    status: a Message.Status other than STREAMING (COMPLETE, STOPPED or ERROR).
    finish_reason: the upstream's ("stop", "length", ...); "" unless COMPLETE.
    model_id: the model that answered, as the upstream named it (else the job's).
    prompt_tokens, completion_tokens: the upstream's usage, else the site's
        estimate (`tokens_estimated`); None when nothing countable was asked.
    error: the upstream failure of an ERROR reply (its kind and message), else None.
    """

    status: str
    finish_reason: str
    model_id: str
    prompt_tokens: int | None
    completion_tokens: int | None
    tokens_estimated: bool
    error: llm.LLMError | None


# What a listener's queue gets: each upstream delta as it arrives, then one ReplyEnd.
ReplyListener = asyncio.Queue["llm.Delta | ReplyEnd"]


class EarlyStream:
    """A reply's upstream stream, opened before the reply is written (`services.reply_request`'s `on_request`).

    A send alone in its hop to the ORM thread asks the upstream while its
    reply and the conversation are written and the transaction commits, about
    3 ms sooner than once the hop is over (bench/README.md, the eighth round).
    Create it on the event loop; `open` is called from the ORM thread, at
    most once. Until a generation takes it (`start_reply`, then `events`), a
    task of its own reads the stream's events into a buffer: aiohttp drops
    what a response had not read yet once its connection is lost, and a
    provider that cut the connection right after some text would lose that
    text. If no generation takes it (the send was refused after all, the
    socket went away meanwhile), `close` it: that closes the upstream response.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._language = translation.get_language()
        self._stream: AsyncIterator[llm.Delta | llm.Finish] | None = None
        self._reading: asyncio.Task | None = None
        self._read: collections.deque[llm.Delta | llm.Finish] = collections.deque()
        self._ended = False
        self._error: Exception | None = None
        self._taken = False
        self._closed = False
        # The pace of the generation that took the stream (`events`); until then it is read as it comes.
        self._pace_s: Callable[[], float] | None = None
        # The loop's time when the request was opened: the reply's time to first token counts from it.
        self.opened_at = 0.0

    def open(self, config: llm.UpstreamConfig, request: llm.ChatRequest) -> None:
        """Stream `request` from the upstream of `config`, started on the loop; thread-safe (a `RequestOpener`)."""
        self._loop.call_soon_threadsafe(self._start, config, request)

    def _start(self, config: llm.UpstreamConfig, request: llm.ChatRequest) -> None:
        if self._closed:  # The send's socket went away before the loop got here.
            return
        self._stream = llm.stream_chat(config, request, pace_s=self._pace)
        self.opened_at = self._loop.time()
        with translation.override(self._language):  # The stream's errors are in the page's language.
            self._reading = start_detached(self._read_ahead(self._stream))

    def _pace(self) -> float:
        return self._pace_s() if self._pace_s is not None else 0.0

    async def _read_ahead(self, stream: AsyncIterator[llm.Delta | llm.Finish]) -> None:
        """Read `stream` into the buffer until the generation takes it, then stop after the event awaited then."""
        try:
            while not self._taken:
                self._read.append(await anext(stream))
        except StopAsyncIteration:
            self._ended = True
        except Exception as exc:  # `llm.stream_chat`'s LLMError, raised again to the generation (`events`).
            self._error = exc

    @property
    def opened(self) -> bool:
        """Whether the request was opened and not closed since."""
        return self._reading is not None and not self._closed

    async def events(self, *, pace_s: Callable[[], float] | None = None) -> AsyncIterator[llm.Delta | llm.Finish]:
        """Yield the stream's events from the first, as `llm.stream_chat` does; raise what it raises.

        pace_s: from now on, the stream's `pace_s` (`llm.stream_chat`).
        """
        assert self._stream is not None and self._reading is not None, "read only once opened"
        self._taken = True
        self._pace_s = pace_s
        try:
            while self._read:
                yield self._read.popleft()
            await asyncio.wait([self._reading])  # It stops after the event it awaits now.
            while self._read:
                yield self._read.popleft()
        finally:
            self._reading.cancel()  # Stopped meanwhile: closes the response; a no-op once it is done.
        if self._error is not None:
            raise self._error
        if not self._ended:
            async for event in self._stream:
                yield event

    def close(self) -> None:
        """Close the stream, and with it the upstream response; idempotent, and a no-op if it never opened."""
        self._closed = True
        if self._reading is None or self._stream is None:
            return
        if not self._reading.done():
            self._reading.cancel()  # Raised inside the stream, whose `async with` closes the response.
        else:
            start_detached(_stream_close(self._stream))


async def _stream_close(stream: AsyncIterator[llm.Delta | llm.Finish]) -> None:
    await stream.aclose()  # type: ignore[attr-defined]  # An async generator's, which AsyncIterator does not declare.


async def requests_handed_over(message_ids: Sequence[str], *, timeout_s: float) -> None:
    """Wait until the generations of these replies have handed their upstream requests to the HTTP transport.

    That is, until each has spent the event loop's CPU of opening its stream
    (`llm.stream_chat`'s `on_sending`), had it opened before it started
    (`EarlyStream`), or ended; at most `timeout_s` seconds (a reply whose
    socket went away never starts). Call it before they start (`start_reply`):
    the ORM thread's next hop waits on it, so that it does not take the
    interpreter lock turn about with the replies the last hop started, which
    slowed both down (bench/README.md, the ninth round).
    """
    loop = asyncio.get_running_loop()
    waiters = [_handover_waiters.setdefault(message_id, loop.create_future()) for message_id in message_ids]
    try:
        if waiters:
            await asyncio.wait(waiters, timeout=timeout_s)
    finally:
        for message_id in message_ids:
            _handover_waiters.pop(message_id, None)


def _handed_over(message_id: str) -> None:
    """Tell who waits for this reply's request (`requests_handed_over`) that it was handed over, or never will be."""
    waiter = _handover_waiters.pop(message_id, None)
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def _opening_turn() -> asyncio.Future[None]:
    """Wait until the generation that asked before this one has handed its request over; return this one's turn.

    Set the turn's result once this generation's request is handed over, or it
    failed or stopped before (`_turn_done`); the next one waits on it, at most
    OPENING_TURN_WAIT_MAX_S. Opening a stream costs the event loop about 1 ms
    of CPU (the SDK's `post`, httpx2, aiohttp) before the request reaches the
    HTTP transport, which on Python 3.11 writes it in a task of its own (3.12
    starts that task eagerly): a hop's 49 replies, started together, built all
    49 requests before the first was written, and all reached the upstream
    together after the last build. In turn, each is written while the next is
    built: at N = 50 the median send's first token came about 30 ms sooner and
    the CPU a reply did not rise (bench/README.md, the seventeenth round).
    """
    global _last_opening
    loop = asyncio.get_running_loop()
    previous, turn = _last_opening, loop.create_future()
    _last_opening = turn
    try:
        if previous is not None and not previous.done() and previous.get_loop() is loop:
            await asyncio.wait([previous], timeout=OPENING_TURN_WAIT_MAX_S)
    except BaseException:  # Stopped while waiting: the next one need not wait for this one.
        _turn_done(turn)
        raise
    return turn


def _turn_done(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_result(None)


def start_reply(
    job: ReplyJob, *, listener: ReplyListener | None = None, early: EarlyStream | None = None
) -> "ReplyGenerator":
    """Start generating `job` in its own task on the running loop; return its generator (`task`, `stop()`).

    listener: a queue that gets every upstream delta, uncoalesced, as it
        arrives, then one `ReplyEnd` once the reply is stored.
    early: the job's request, opened already (`EarlyStream`); the generation
        reads it first, and closes it, when it is open.
    The task is detached (`start_detached`): a reply asked for by an HTTP
    request (a new chat's first message, the API) outlives the request.
    """
    generator = ReplyGenerator(job, listener=listener, early=early if early is not None and early.opened else None)
    generator.task = start_detached(generator.run())
    return generator


class ReplyGenerator:
    """One reply's generation: upstream stream in, coalesced deltas out, checkpoints, one final write."""

    task: asyncio.Task | None = None

    def __init__(
        self, job: ReplyJob, *, listener: ReplyListener | None = None, early: EarlyStream | None = None
    ) -> None:
        self.job = job
        self.listener = listener
        self.early = early
        self.layer = events.channel_layer()
        self.group = events.conversation_group(job.conversation_id)
        self.message_id = str(job.message.public_id) if job.message is not None else ""
        self.deltas = coalescing.DeltaCoalescer(
            self._send_delta, window_s=lambda: coalescing.window_s(streaming=len(_streaming))
        )
        self.stopped = False
        self.received_chars = 0
        self.started = 0.0
        self.ttft_ms: int | None = None
        self._consume_task: asyncio.Task | None = None

    def stop(self) -> None:
        """Stop the reply as a page's Stop does: close the upstream response, keep (and store) the text so far."""
        self.stopped = True
        if self._consume_task is not None:
            self._consume_task.cancel()

    async def run(self) -> None:
        """Generate, then store and broadcast the result; never raises (errors become the reply)."""
        if self.early is not None:  # Its request was opened before the reply was written.
            _handed_over(self.message_id)
        stored = self.job.message is not None
        consume = self._consume_task = asyncio.create_task(self._consume())
        if self.stopped:  # Stopped before it started.
            consume.cancel()
        helpers = [asyncio.create_task(self._checkpoints())]
        if stored:
            control_channel = await self.layer.new_channel()
            control_group = events.control_group(self.job.conversation_id)
            await self.layer.group_add(control_group, control_channel)
            helpers.append(asyncio.create_task(self._listen(control_channel, consume)))
        _streaming.add(self)
        try:
            result = await consume
        except asyncio.CancelledError:
            if not self.stopped:
                raise
            result = _Outcome(status=Message.Status.STOPPED, ttft_ms=self.ttft_ms, duration_ms=self._elapsed_ms())
        finally:
            _handed_over(self.message_id)  # Ended or stopped before its request was handed over.
            _streaming.discard(self)
            if self.early is not None:  # Its response, and its reading ahead if the reply was stopped before reading.
                self.early.close()
            for helper in helpers:
                helper.cancel()
            if stored:
                await self.layer.group_discard(control_group, control_channel)
        await self.deltas.close()
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
        self.started = self.early.opened_at if self.early is not None else asyncio.get_running_loop().time()
        for attempt in range(settings.CHAT_UPSTREAM_RETRIES + 1):
            turn: asyncio.Future[None] | None = None
            retry_in_s = 0.0
            # A listener gets each upstream delta as it comes; otherwise the upstream is read once a window.
            pace_s = self.deltas.pace if self.listener is None else None
            if attempt == 0 and self.early is not None:
                stream = self.early.events(pace_s=pace_s)
            else:
                turn = await _opening_turn()
                stream = llm.stream_chat(
                    self.job.config, self.job.request, on_sending=partial(self._sending, turn), pace_s=pace_s
                )
            try:
                async for event in stream:
                    if isinstance(event, llm.Finish):
                        return _Outcome(
                            status=Message.Status.COMPLETE,
                            finish=event,
                            ttft_ms=self.ttft_ms,
                            duration_ms=self._elapsed_ms(),
                        )
                    if self.ttft_ms is None:
                        self.ttft_ms = self._elapsed_ms()
                    self.received_chars += len(event.text)
                    if self.listener is not None:
                        self.listener.put_nowait(event)
                    self.deltas.push(event.text)
            except llm.LLMError as exc:
                wait_s = _retry_wait_s(exc, attempt=attempt, text_shown=self.ttft_ms is not None)
                if wait_s is None:
                    return _Outcome(
                        status=Message.Status.ERROR, error=exc, ttft_ms=self.ttft_ms, duration_ms=self._elapsed_ms()
                    )
                logger.info("Retrying reply %s in %.1f s after %s", self.message_id, wait_s, exc.kind)
                retry_in_s = wait_s
            finally:
                if turn is not None:  # A no-op once handed over; else it failed or was stopped before.
                    _turn_done(turn)
            await asyncio.sleep(retry_in_s)
        raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover

    def _sending(self, turn: asyncio.Future[None]) -> None:
        """The upstream request is handed to the HTTP transport: the next generation may open its own.

        Its turn passes in a callback of its own, so that the generations
        started with this one are waiting for it when it passes, and the
        transport's task that writes this request runs before the next one
        builds its own (`_opening_turn`).
        """
        asyncio.get_running_loop().call_soon(_turn_done, turn)
        _handed_over(self.message_id)

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
            try:
                await _checkpoint_hop((self.job, self.deltas.text))
            except Exception:  # A failed checkpoint must not end the reply; the final write still comes.
                logger.warning("Checkpoint of reply %s failed", self.message_id, exc_info=True)
            saved_chars, saved_at = chars, loop.time()

    async def _send_delta(self, seq: int, text: str) -> None:
        if self.job.message is None:  # Not stored: no page shows it.
            return
        event: events.ReplyDelta = {"type": "reply.delta", "message_id": self.message_id, "seq": seq, "text": text}
        await self.layer.group_send(self.group, events.layer_message(event))

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
                    "seq": self.deltas.seq,
                    "text": self.deltas.sent_text,
                }
                await self.layer.send(event["reply_channel"], events.layer_message(snapshot))

    async def _finish(self, outcome: "_Outcome") -> str:
        """Store the reply once, send its final bubble to every tab and its end to the listener; return its text."""
        content = self.deltas.text
        finish = outcome.finish
        usage = self._usage(finish, content)
        end = ReplyEnd(
            status=outcome.status,
            finish_reason=finish.finish_reason if finish else "",
            model_id=finish.model if finish and finish.model else self.job.request.model,
            error=outcome.error,
            **usage,
        )
        try:
            if self.job.message is None:
                end = await database_sync_to_async(_store_usage)(job=self.job, end=end, content=content)
                html = ""
            else:
                message, html = await database_sync_to_async(_store)(
                    job=self.job,
                    content=content,
                    status=outcome.status,
                    finish_reason=end.finish_reason,
                    error_text=outcome.error.message if outcome.error else "",
                    model_id=finish.model if finish else "",
                    ttft_ms=outcome.ttft_ms,
                    duration_ms=outcome.duration_ms,
                    **usage,
                )
                end = replace(end, prompt_tokens=message.prompt_tokens, completion_tokens=message.completion_tokens)
        except Message.DoesNotExist:
            logger.info("Reply %s dropped: its conversation was deleted", self.message_id)
            return self._end(end, "")
        except Exception:
            # The generation task has no caller to raise to; log it and leave the bubble as it is.
            logger.exception("Could not store reply %s", self.message_id)
            return self._end(end, "")
        if html:
            final: events.ReplyFinal = {"type": "reply.final", "message_id": self.message_id, "html": html}
            await self.layer.group_send(self.group, events.layer_message(final))
        return self._end(end, content)

    def _end(self, end: ReplyEnd, content: str) -> str:
        if self.listener is not None:
            self.listener.put_nowait(end)
        return content

    def _usage(self, finish: llm.Finish | None, content: str) -> dict:
        """Return the reply's token counts: the upstream's, else the site's estimate, marked as such.

        Streams without usage (llama.cpp, a stream stopped or cut before its
        usage chunk) would count nothing toward the daily token quota, though
        the provider computed, and may bill, every token. The prompt's estimate
        is the count the context was selected with; a missing completion count
        is left None for `services.reply_finish`, which counts the reply's text
        anyway (off the event loop). Replies that got no text and did not
        complete asked for nothing countable: None.
        """
        prompt = finish.prompt_tokens if finish else None
        completion = finish.completion_tokens if finish else None
        if prompt is not None and completion is not None:
            return {"prompt_tokens": prompt, "completion_tokens": completion, "tokens_estimated": False}
        if not content and finish is None:
            return {"prompt_tokens": None, "completion_tokens": None, "tokens_estimated": False}
        return {
            "prompt_tokens": prompt if prompt is not None else self.job.prompt_tokens_counted,
            "completion_tokens": completion,
            "tokens_estimated": True,
        }


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


def _store(*, job: ReplyJob, **fields) -> tuple[Message, str]:
    """Store the finished reply (one write); return it and the fragments that show it in every tab.

    The context line under the composer counts from the history the request
    was selected from, with this reply (`ReplyJob.history`), not read again.
    """
    assert job.message is not None, "a stored reply's job has its message"
    message = services.reply_finish(message=job.message, **fields)
    history = job.history.with_message(message) if job.history is not None else None
    return message, fragments.reply_final_html(conversation=message.conversation, message=message, history=history)


def _checkpoints_write(hop: Hop[tuple[ReplyJob, str], None]) -> list[None]:
    """Save stored replies' text so far with their heartbeat, in one statement; for those not stored, the heartbeat.

    hop.items: (a streaming reply's job, its text so far) of each reply checking in meanwhile (`_checkpoint_hop`).
    """
    checkpoints = hop.items
    for job, _text in checkpoints:
        if job.message is None and job.unstored is not None:
            services.reply_unstored_heartbeat(reply=job.unstored)
    services.replies_checkpoint(
        checkpoints=[(job.message, text) for job, text in checkpoints if job.message is not None]
    )
    return [None] * len(checkpoints)


# `await _checkpoint_hop((job, text))`: a reply's checkpoint, with those of the replies checking in meanwhile. The
# replies a class started together check in together, every CHAT_CHECKPOINT_S: one statement for them all.
_checkpoint_hop = HopBatcher(_checkpoints_write, max_size=500)


def _store_usage(*, job: ReplyJob, end: ReplyEnd, content: str) -> ReplyEnd:
    """Count a reply that is not stored toward its user's quotas; return `end` with its final token counts."""
    assert job.unstored is not None, "a job without a message has its quota record"
    prompt_tokens, completion_tokens = services.reply_unstored_finish(
        reply=job.unstored,
        content=content,
        model_id=end.model_id,
        prompt_tokens=end.prompt_tokens,
        completion_tokens=end.completion_tokens,
        tokens_estimated=end.tokens_estimated,
    )
    return replace(end, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


@dataclass(frozen=True)
class _Outcome:
    status: str
    finish: llm.Finish | None = None
    error: llm.LLMError | None = None
    ttft_ms: int | None = None
    duration_ms: int | None = None
