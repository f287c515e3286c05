"""Answer a person's IM message with the channel's persona, through the site's own reply machinery.

The same path as a browser tab: `conversations.services.reply_request` saves
the question in the chat's conversation under the sender's own quota (in a
group too: each member is charged for what they ask) and builds the job,
`conversations.generation.start_reply` streams it; this module listens on
the conversation's channel layer group like a tab does (`reply.delta`,
`reply.final`, see conversations/events.py) and hands the text to a
platform `Sink` (a Feishu card updated in place, or WeChat text messages).
Commands (`/help`, `/new`, `/link CODE`) are answered here.
"""

import asyncio
import logging
import re
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.translation import gettext as _

from bots import services
from bots.models import BotChannel, BotChat, BotIdentity, Delivery
from conversations import events, generation
from conversations import services as conversation_services
from conversations.models import Message

logger = logging.getLogger(__name__)

NEW_COMMANDS = {"/new", "新对话", "新對話"}
HELP_COMMANDS = {"/help", "帮助", "幫助"}
LINK_COMMAND = re.compile(r"^/link\s+(\S+)$", re.IGNORECASE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


class Sink(Protocol):
    """Where a reply goes on a platform."""

    async def say(self, text: str) -> None:
        """Send a short message of the bot's own (help, a refusal, an error), as plain text."""

    async def show(self, text: str, *, final: bool) -> None:
        """Show the reply's Markdown so far; `final` once, with the whole reply."""


def start_background(coroutine) -> asyncio.Task:
    """Run `coroutine` after the callback has been answered, detached from the request; return the task.

    `generation.start_detached`, in the person's language later (`answer`), not the platform request's.
    """
    with translation.override(None):
        return generation.start_detached(coroutine)


def person_language(*, user, text: str) -> str:
    """Return the language to answer in: the person's site preference, else Chinese for CJK text, else the site's."""
    preference = getattr(user, "preference", None)
    language = getattr(preference, "language", "") if preference is not None else ""
    if language:
        return language
    return "zh-hans" if _CJK.search(text) else settings.LANGUAGE_CODE


def help_text(*, channel: BotChannel) -> str:
    """Return what `/help` answers: who answers, and the commands."""
    persona = channel.persona
    intro = _("I am %(name)s, answered by this site's model.") % {"name": persona.name}
    if persona.description:
        intro += " " + persona.description
    return "\n".join(
        [
            intro,
            _("Send a message and I reply; I remember this chat's recent messages."),
            _("/new (or 新对话) starts a new conversation."),
            _("/link CODE links this chat to your site account (the code is on your account page)."),
            _("/help shows this message."),
        ]
    )


@database_sync_to_async
def _load(delivery_id: int) -> tuple[Delivery, BotChat, BotIdentity]:
    delivery = Delivery.objects.select_related("channel__persona__model", "chat__owner", "chat__conversation").get(
        pk=delivery_id
    )
    assert delivery.chat is not None, "a delivery to answer belongs to a chat"
    identity = BotIdentity.objects.select_related("user__preference").get(
        channel=delivery.channel, platform_user_id=delivery.sender_id
    )
    return delivery, delivery.chat, identity


@database_sync_to_async
def _request(*, chat: BotChat, delivery: Delivery, identity: BotIdentity) -> conversation_services.RequestedReply:
    conversation = services.chat_conversation(chat=chat)
    requested = conversation_services.reply_request(
        user=chat.owner,
        public_id=conversation.public_id,
        action="send",
        text=delivery.text,
        idempotency_key=f"bot:{delivery.pk}",
        asked_by=identity.user,
    )
    services.delivery_update(delivery=delivery, state=Delivery.State.REPLYING, reply=requested.job.message)
    return requested


async def answer(*, delivery_id: int, sink: Sink) -> None:
    """Answer delivery `delivery_id` in its chat through `sink`; never raises (failures are logged and said).

    The delivery is marked done at the end, whatever happened, so a retry of
    the platform or a restart does not answer it twice.
    """
    delivery, chat, identity = await _load(delivery_id)
    with translation.override(person_language(user=identity.user, text=delivery.text)):
        try:
            await _answer(delivery=delivery, chat=chat, identity=identity, sink=sink)
        except Exception:
            logger.exception("Could not answer delivery %s", delivery_id)
            try:
                await sink.say(_("Something went wrong while answering. Please try again."))
            except Exception:
                logger.warning("Could not tell delivery %s about the failure", delivery_id, exc_info=True)
        await database_sync_to_async(services.delivery_update)(delivery=delivery, state=Delivery.State.DONE, payload={})


async def _answer(*, delivery: Delivery, chat: BotChat, identity: BotIdentity, sink: Sink) -> None:
    text = delivery.text.strip()
    if not text:  # A picture, a file, a sticker...: no text to answer.
        await sink.say(_("I can read text messages only. Please write your question as text."))
        return
    command = text.lower()
    if command in HELP_COMMANDS:
        await sink.say(help_text(channel=delivery.channel))
        return
    if command in NEW_COMMANDS:
        await database_sync_to_async(services.chat_conversation)(chat=chat, fresh=True)
        await sink.say(_("Started a new conversation."))
        return
    if match := LINK_COMMAND.match(text):
        if chat.is_group:
            await sink.say(_("Send /link in a direct chat with me, not in a group."))
            return
        try:
            user = await database_sync_to_async(services.identity_link)(identity=identity, code=match[1])
        except ValidationError as exc:
            await sink.say(" ".join(exc.messages))
            return
        await sink.say(
            _("This chat is now linked to the site account %(name)s; its conversations are in that sidebar.")
            % {"name": user.get_username()}
        )
        return
    try:
        requested = await _request(chat=chat, delivery=delivery, identity=identity)
    except ValidationError as exc:  # The sender's quota, a message too long, a persona gone: said in the chat.
        await sink.say(" ".join(exc.messages))
        return
    except conversation_services.DuplicateSend:
        return
    await follow_reply(requested=requested, sink=sink)


async def follow_reply(*, requested: conversation_services.RequestedReply, sink: Sink) -> None:
    """Start the reply's generation and show it through `sink` as it streams, then whole when stored."""
    job = requested.job
    assert job.message is not None, "a bot's replies are stored"
    reply = job.message
    layer = events.channel_layer()
    group = events.conversation_group(job.conversation_id)
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        await layer.group_send(group, events.layer_message(requested.changed))
        task = generation.start_reply(job).task
        assert task is not None
        message_id = str(reply.public_id)
        text = ""
        interval_s = settings.BOTS_STREAM_INTERVAL_MS / 1000
        loop = asyncio.get_running_loop()
        shown_at = 0.0
        while not task.done():
            receive = asyncio.ensure_future(layer.receive(channel))
            done, _pending = await asyncio.wait({receive, task}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                break
            event = receive.result()
            if event.get("message_id") != message_id:
                continue
            if event.get("type") == "reply.final":
                break
            if event.get("type") == "reply.delta":
                text += str(event.get("text") or "")
                if text.strip() and loop.time() - shown_at >= interval_s:
                    await sink.show(text, final=False)
                    shown_at = loop.time()
    finally:
        await layer.group_discard(group, channel)
    await sink.show(await reply_text(message_pk=reply.pk), final=True)


@database_sync_to_async
def reply_text(*, message_pk: int) -> str:
    """Return a stored reply as the chat shows it: its text, with the reason when it failed or was cut short."""
    try:
        message = Message.objects.get(pk=message_pk)
    except Message.DoesNotExist:
        return _("This conversation was deleted on the site.")
    if message.status == Message.Status.STREAMING:  # Its worker died: what was checkpointed is what there is.
        conversation_services.replies_streaming_live(conversation=message.conversation)
        message.refresh_from_db()
    text = message.content
    note = message.error_text
    if message.status == Message.Status.STOPPED:
        note = _("(stopped)")
    if note:
        text = f"{text}\n\n{note}" if text else note
    return text or _("(no reply)")
