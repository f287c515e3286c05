"""The websocket of one conversation page: frames in, HTML fragments out (protocol in events.py)."""

import logging
import time
from collections import Counter
from collections.abc import Sequence

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _

from conversations import events, fragments, generation, selectors, services
from conversations.batching import Hop, HopBatcher
from conversations.models import Conversation
from conversations.signin import SignInCheck

logger = logging.getLogger(__name__)

CLOSE_ANONYMOUS = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_FRAME = 4400
CLOSE_TOO_MANY_SOCKETS = 4429

# Open sockets per user id in this process (CHAT_MAX_SOCKETS_PER_USER caps them).
_sockets_per_user: Counter[int] = Counter()


class ConversationConsumer(AsyncJsonWebsocketConsumer):
    """Relay a conversation's events to one tab and take its frames (send, edit, regenerate, continue, stop, sync).

    Close codes: 4401 anonymous, or signed out since (on any worker); 4403
    unknown or another user's conversation (the two are indistinguishable on
    purpose); 4400 bad frame and 4429 more sockets than
    CHAT_MAX_SOCKETS_PER_USER in this process (both with a reason).
    """

    # Whether this socket counts toward its user's cap, and whether it is closing (queued frames get no answer).
    counted = False
    closing = False

    async def connect(self) -> None:
        # Accept first: a close before accept is an HTTP 403 and loses the code.
        await self.accept()
        # The auth stack's user is a lazy proxy (typed as a bare AbstractBaseUser); isinstance sees what
        # it wraps: a user of the user model, or AnonymousUser.
        user: object = self.scope.get("user")
        if not isinstance(user, get_user_model()) or not user.is_authenticated:
            await self.close(code=CLOSE_ANONYMOUS)
            return
        self.user = user
        self.sign_in = SignInCheck(self.scope)
        if _sockets_per_user[user.pk] >= settings.CHAT_MAX_SOCKETS_PER_USER:
            reason = _("Too many open chat tabs: close some and reload this page.")
            await self.send_alert(reason)
            await self.close(code=CLOSE_TOO_MANY_SOCKETS, reason=reason[:120])
            return
        _sockets_per_user[user.pk] += 1
        self.counted = True
        self.user_group = events.user_group(user.pk)
        await self.channel_layer.group_add(self.user_group, self.channel_name)
        try:
            self.conversation, streaming_ids = await _load(self.sign_in, self.scope["url_route"]["kwargs"]["public_id"])
        except _SignedOut:
            await self.close(code=CLOSE_ANONYMOUS)
            return
        except Conversation.DoesNotExist:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = events.conversation_group(self.conversation.public_id)
        # message id -> last delta seq shown; None while waiting for a snapshot.
        self.shown_seq: dict[str, int | None] = {}
        self.early_deltas: dict[str, list[events.ReplyDelta]] = {}
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._request_snapshots(streaming_ids)

    async def _request_snapshots(self, streaming_ids: list) -> None:
        """Ask the generators of `streaming_ids` for the text so far; hold their deltas until it comes."""
        for message_id in streaming_ids:
            self.shown_seq[str(message_id)] = None
        if streaming_ids:
            sync: events.ReplySync = {"type": "reply.sync", "reply_channel": self.channel_name}
            await self.channel_layer.group_send(
                events.control_group(self.conversation.public_id), events.layer_message(sync)
            )

    async def dispatch(self, message: dict) -> None:
        """Run the handler of `message` (a websocket frame or a channel layer event, by its type).

        Channels' own dispatch first closes stale database connections on the
        one thread that runs the ORM, a thread hop for every event: with a
        hundred replies streaming, every delta of every tab queued behind the
        database work (bench/load.py). The handlers here that use the database
        do it through `database_sync_to_async`, which closes them itself.

        Raises:
            ValueError: no handler for the message's type (as Channels does).
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        # The reply keeps going: it belongs to the conversation, not to this socket.
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.counted:
            self.counted = False
            _sockets_per_user[self.user.pk] -= 1
            if _sockets_per_user[self.user.pk] <= 0:
                del _sockets_per_user[self.user.pk]
            await self.channel_layer.group_discard(self.user_group, self.channel_name)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        self.closing = True
        await super().close(code=code, reason=reason)

    async def send(  # type: ignore[override]  # The stubs give it AsyncConsumer.send(message)'s signature.
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        # Frames and events still queued when the socket was closed get no answer: daphne would
        # raise "Attempt to send on a closed protocol" for each (a flood of bad frames, bench/load.py).
        if not self.closing:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs) -> None:
        if not hasattr(self, "group") or self.closing:
            return
        if text_data is not None and len(text_data.encode()) > settings.CHAT_MAX_FRAME_BYTES:
            await self._refuse(_("The frame is too large."))
            return
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
        except (ValueError, RecursionError):  # Not JSON, nested deeper than the parser goes, or a binary frame.
            await self._refuse(_("The frame is not valid JSON text."))

    async def receive_json(self, content: object, **kwargs) -> None:
        # The frame is checked before anything else: a refused frame costs no database round trip.
        problem = frame_problem(content)
        if problem is not None:
            await self._refuse(problem)
            return
        assert isinstance(content, dict)  # frame_problem refuses anything else
        action = content["action"]
        # A reply's request checks the sign-in in its own hop to the ORM thread (`_request_if_signed_in`).
        if action in ("stop", "sync") and not await _still_signed_in(self.sign_in):
            await self.close(code=CLOSE_ANONYMOUS)  # Logged out or deactivated since the socket opened.
            return
        if action == "stop":
            stop: events.ReplyStop = {"type": "reply.stop"}
            await self.channel_layer.group_send(
                events.control_group(self.conversation.public_id), events.layer_message(stop)
            )
        elif action == "sync":
            await self._bring_up_to_date(content)
        else:
            attachments = [i for i in content.get("attachments", "").split(",")[:MAX_ATTACHMENT_IDS] if i.strip()]
            await self._start_reply(
                action, content.get("message", ""), content.get("idempotency_key", ""), attachments=attachments
            )

    async def _bring_up_to_date(self, frame: dict) -> None:
        """Bring this tab up to date after a reconnect (events.SyncFrame)."""
        shown = frame.get("streaming", [])[:50]
        try:
            html, streaming_ids = await _resync(
                self.scope["user"], self.conversation.public_id, full=frame.get("full") is True, shown_streaming=shown
            )
        except Conversation.DoesNotExist:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        if html:
            await self._send_html(html)
        await self._request_snapshots(streaming_ids)

    async def _refuse(self, reason: str) -> None:
        await self.send_alert(reason)
        await self.close(code=CLOSE_BAD_FRAME, reason=reason[:120])

    async def _start_reply(
        self, action: str, text: object, idempotency_key: object, *, attachments: list[str] | None = None
    ) -> None:
        """Ask for a reply; tell this tab whether its frame was taken (`fragments.send_outcome_html`)."""
        key = idempotency_key if isinstance(idempotency_key, str) else ""
        early = generation.EarlyStream()  # Opened in the hop when the send is alone in it (`reply_request`).
        started = False
        try:
            requested = await _request_if_signed_in(
                (
                    self.sign_in,
                    {
                        "user": self.user,
                        "public_id": self.conversation.public_id,
                        "action": action,
                        "text": text,
                        "idempotency_key": key,
                        "attachments": attachments or [],
                        "on_request": early.open,
                    },
                    translation.get_language(),
                )
            )
        except _SignedOut:
            await self.close(code=CLOSE_ANONYMOUS)  # Logged out or deactivated since the socket opened.
        except Conversation.DoesNotExist:
            await self.close(code=CLOSE_FORBIDDEN)
        except ValidationError as exc:
            await self.send(
                text_data=fragments.send_outcome_html(accepted=False, key=key, reason=" ".join(exc.messages))
            )
        except services.DuplicateSend:
            # A double Enter, or a message resent after a reconnect: the first one is already under way.
            await self.send(text_data=fragments.send_outcome_html(accepted=True, key=key))
        else:
            await self.send(text_data=fragments.send_outcome_html(accepted=True, key=key))
            # The bubbles before the reply starts, as its deltas go into them: this tab's straight to its socket,
            # as through the group they waited for the event loop to build the upstream requests of the replies
            # started meanwhile, a class's 32 sends of one hop taking 30 to 50 ms (bench/README.md, the seventh
            # round); then every other tab's, on every worker.
            html = requested.changed["html"]
            await self._send_html(html)
            changed: events.MessagesChanged = {"type": "messages.changed", "html": html, "shown_by": self.channel_name}
            await self.channel_layer.group_send(self.group, events.layer_message(changed))
            generation.start_reply(requested.job, early=early)
            started = True
        finally:
            if not started:  # Refused after its request was opened, or the socket went away meanwhile.
                early.close()

    async def _send_text(self, message_id: str, text: str, *, replace: bool) -> None:
        """Append `text` to a streaming bubble (or, with `replace`, set it), in frames that fit the limit."""
        # Escaping at most sextuples a character's UTF-8 bytes ("&quot;"), a fragment adds about 100.
        piece = settings.CHAT_MAX_SENT_FRAME_BYTES // 8
        for start in range(0, max(len(text), 1), piece):
            part = text[start : start + piece]
            if replace and start == 0:
                await self.send(text_data=fragments.text_replaced_html(message_id, part))
            else:
                await self.send(text_data=fragments.text_appended_html(message_id, part))

    async def _send_html(self, html: str) -> None:
        """Send `html`, or, when it is over CHAT_MAX_SENT_FRAME_BYTES, a fragment fetching the messages over HTTP.

        Daphne refuses frames over 1 MiB and the page would reconnect forever;
        a fragment that big (a huge reply, a page of long messages) goes to
        the page by HTTP instead, which has no such limit.
        """
        limit = settings.CHAT_MAX_SENT_FRAME_BYTES
        if len(html) > limit // 4 and len(html.encode()) > limit:
            html = fragments.messages_refetch_html(conversation=self.conversation)
        await self.send(text_data=html)

    async def send_alert(self, text: str) -> None:
        """Show `text` (escaped) under the composer of this tab only; "" clears it."""
        await self.send(text_data=fragments.alert_html(text))

    # Channel layer event handlers (see events.py)

    async def session_ended(self, event: events.SessionEnded) -> None:
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        if key and constant_time_compare(events.session_hash(key), event["session_hash"]):
            await self.close(code=CLOSE_ANONYMOUS)

    async def account_changed(self, event: events.AccountChanged) -> None:
        if not await _still_signed_in(self.sign_in):
            await self.close(code=CLOSE_ANONYMOUS)

    async def messages_changed(self, event: events.MessagesChanged) -> None:
        if event.get("shown_by") != self.channel_name:  # The asking tab showed them already (`_start_reply`).
            await self._send_html(event["html"])

    async def title_changed(self, event: events.TitleChanged) -> None:
        await self._send_html(event["html"])

    async def reply_delta(self, event: events.ReplyDelta) -> None:
        message_id = event["message_id"]
        if message_id not in self.shown_seq:
            self.shown_seq[message_id] = 0  # A reply that started after this tab connected.
        shown = self.shown_seq[message_id]
        if shown is None:  # Waiting for the snapshot: keep it for later.
            self.early_deltas.setdefault(message_id, []).append(event)
            return
        if event["seq"] <= shown:
            return
        if event["seq"] > shown + 1:
            # Deltas went missing (a channel layer over capacity drops them): ask for the text so far
            # rather than show a hole; this delta and the next wait for it.
            self.early_deltas[message_id] = [event]
            await self._request_snapshots([message_id])
            return
        self.shown_seq[message_id] = event["seq"]
        await self._send_text(message_id, event["text"], replace=False)

    async def reply_snapshot(self, event: events.ReplySnapshot) -> None:
        message_id = event["message_id"]
        if self.shown_seq.get(message_id, 0) is not None:
            return  # Not asked for, or already synced.
        self.shown_seq[message_id] = event["seq"]
        await self._send_text(message_id, event["text"], replace=True)
        for delta in self.early_deltas.pop(message_id, []):
            await self.reply_delta(delta)

    async def reply_final(self, event: events.ReplyFinal) -> None:
        self.shown_seq.pop(event["message_id"], None)
        self.early_deltas.pop(event["message_id"], None)
        await self._send_html(event["html"])


# The fields each frame may carry (events.py) and their JSON types; others are ignored
# (htmx's ws extension adds "HEADERS").
_FRAME_FIELDS: dict[str, dict[str, type]] = {
    # attachments: the public ids of the uploads sent with the message, comma-separated (one hidden input).
    "send": {"message": str, "idempotency_key": str, "attachments": str},
    "edit": {"message": str, "idempotency_key": str, "attachments": str},
    "regenerate": {},
    "continue": {"idempotency_key": str},
    "stop": {},
    "sync": {"streaming": list, "full": bool},
}
IDEMPOTENCY_KEY_MAX_CHARS = 64
# Attachment ids read from one frame; the policy's files per message refuses more than it allows.
MAX_ATTACHMENT_IDS = 50


def frame_problem(content: object) -> str | None:
    """Return why `content` (a decoded JSON frame) is not a frame of events.py, or None when it is.

    Checks the shape only: an object with a known `action`, each field of that
    action of its JSON type, text that is valid Unicode (JSON's \\ud800
    escapes can carry lone surrogates, which no database or page can hold),
    an idempotency key of at most 64 characters, `streaming` a list of strings.
    What the text says (empty, too long) is the services' to judge.
    """
    if not isinstance(content, dict):
        return _("The frame must be a JSON object.")
    action = content.get("action")
    if not isinstance(action, str) or action not in _FRAME_FIELDS:
        return _("The frame needs an action: send, stop, edit, regenerate, continue or sync.")
    for field, kind in _FRAME_FIELDS[action].items():
        if field not in content:
            continue
        value = content[field]
        items = value if isinstance(value, list) else [value]
        if not isinstance(value, kind) or (kind is list and not all(isinstance(item, str) for item in items)):
            return _("The frame's “%(field)s” has the wrong type.") % {"field": field}
        if not all(_is_unicode(text) for text in items if isinstance(text, str)):
            return _("The frame's “%(field)s” is not valid Unicode text.") % {"field": field}
    key = content.get("idempotency_key", "")
    if isinstance(key, str) and len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
        return _("The frame's idempotency key is longer than %(limit)d characters.") % {
            "limit": IDEMPOTENCY_KEY_MAX_CHARS
        }
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # A lone surrogate.
        return False
    return True


@database_sync_to_async
def _load(sign_in: SignInCheck, public_id) -> tuple[Conversation, list]:
    """Return the socket's conversation and its replies streaming, once its sign-in is checked.

    The check runs here, when the socket opens, so that the sends check only
    that nothing changed since (`SignInCheck`).

    Raises:
        _SignedOut: the session no longer signs in its user.
        Conversation.DoesNotExist: not the user's conversation.
    """
    if not sign_in.signed_in():
        raise _SignedOut
    conversation = selectors.conversation_get_for_user(user=sign_in.scope["user"], public_id=public_id)
    return conversation, [m.public_id for m in services.replies_streaming_live(conversation=conversation)]


@database_sync_to_async
def _resync(user, public_id, *, full: bool, shown_streaming: list[str]) -> tuple[str, list]:
    """Return the HTML that brings a tab up to date, and the replies still streaming.

    Stale replies of dead workers are marked interrupted first. With `full`,
    the whole conversation is sent again (a reconnect may have missed
    anything); otherwise only the final bubbles of the replies the page still
    shows as streaming but that have finished meanwhile.
    """
    conversation = selectors.conversation_get_for_user(user=user, public_id=public_id)
    streaming_ids = [m.public_id for m in services.replies_streaming_live(conversation=conversation)]
    if full:
        return fragments.message_list_html(conversation=conversation), streaming_ids
    finished = selectors.message_list_by_ids(conversation=conversation, public_ids=shown_streaming)
    html = "".join(
        fragments.bubble_html(conversation=conversation, message=m, oob=True) for m in finished if not m.is_streaming
    )
    return html, streaming_ids


# `_still_signed_in(check)`: reads only, off the single thread that orders the ORM writes, so a
# busy worker checks a stop frame without queueing behind checkpoints.
_still_signed_in = database_sync_to_async(SignInCheck.signed_in, thread_sensitive=False)


class _SignedOut(Exception):
    """The socket's session no longer signs in its user (`SignInCheck`)."""


def _requests_if_signed_in(
    hop: Hop[tuple[SignInCheck, dict, str], services.RequestedReply],
) -> list[services.RequestedReply | Exception]:
    """Check each sign-in (`SignInCheck`), then `services.replies_request` for those still signed in, in one hop.

    `hop.items`: (the socket's sign-in check, `reply_request`'s keyword
    arguments, the language of its page) of each send queued meanwhile
    (`_request_if_signed_in`), and of those that come while the checks run
    (`Hop.more`), checked in turn. A send waits for the ORM thread anyway: a
    second hop for the check, on other threads, had a class's sends all check
    first and contend for the interpreter while the first requests waited
    (bench/load.py). The sends of each language are requested together in
    it, so that every bubble and refusal is in the language of the page it
    goes to (the hop runs in the context of whichever send started it): in
    arrival order within a language, each language in a transaction of its
    own, whose failure is its sends' alone. With several languages in a hop
    none opens its upstream request early: only a send alone in its hop does
    (`services.replies_request`).

    Returns, for each: the requested reply, `_SignedOut` (logged out, password
    changed or deactivated since the socket opened; nothing saved), or what
    `services.reply_request` raises (or `services.replies_request`, for all of its language).
    """
    asked: list[tuple[SignInCheck, dict, str]] = []
    signed_in: list[bool] = []
    late = hop.items
    while late:
        asked += late
        signed_in += [sign_in.signed_in() for sign_in, _request, _language in late]
        if len(asked) > 1:  # A class's sends: the event loop reads the frames that came meanwhile, then take them.
            time.sleep(SEND_GATHER_PAUSE_S)
        late = hop.more()
    outcomes: list[services.RequestedReply | Exception] = [_SignedOut() for _ in asked]
    languages = dict.fromkeys(language for (_, _, language), ok in zip(asked, signed_in, strict=True) if ok)
    for language in languages:
        requested = [i for i, (_, _, other) in enumerate(asked) if other == language and signed_in[i]]
        requests = [asked[i][1] if len(languages) == 1 else {**asked[i][1], "on_request": None} for i in requested]
        try:
            with translation.override(language):
                done: Sequence[services.RequestedReply | Exception] = services.replies_request(requests)
        except Exception as exc:  # That language's transaction; the others' stand.
            done = [exc] * len(requested)
        for i, outcome in zip(requested, done, strict=True):
            outcomes[i] = outcome
    return outcomes


# The most sends one hop takes: a send early in a batch waits for the batch's commit, a send late in a class waits for
# the hops before its own. 32 against 16: bench/README.md, the sixth and ninth rounds; 64 against 32, the twelfth
# (at N = 50 own message p99 144 against 306 ms, first token p50 about 25 ms later).
SEND_BATCH_MAX = 64
# How long a hop of several sends lets the event loop read more of them before it takes them (`Hop.more`), each
# time it took some: the interpreter lock is the hop's while it checks, and a class's frames then came in after
# it had stopped taking, to wait for it and the starts of its replies (bench/README.md, the twentieth round).
# A send alone in its hop does not wait.
SEND_GATHER_PAUSE_S = 0.001
# The longest the next hop waits for the last hop's replies to hand their requests over (`_replies_handed_over`).
SEND_HANDOVER_WAIT_MAX_S = 0.2


async def _replies_handed_over(outcomes: Sequence[services.RequestedReply | Exception]) -> None:
    """Wait until the replies a hop's sends start have handed their upstream requests over (at most a while).

    The sends queued meanwhile then go to the ORM thread: their hop taking
    the interpreter lock turn about with the starts of those replies, each
    about 1 ms of the event loop, slowed both (bench/README.md, the ninth round).
    """
    await generation.requests_handed_over(
        [
            str(o.job.message.public_id)
            for o in outcomes
            if isinstance(o, services.RequestedReply) and o.job.message is not None
        ],
        timeout_s=SEND_HANDOVER_WAIT_MAX_S,
    )


# `await _request_if_signed_in((sign_in, request, language))`: a send's request, with the others queued meanwhile.
_request_if_signed_in = HopBatcher(_requests_if_signed_in, max_size=SEND_BATCH_MAX, settle=_replies_handed_over)
