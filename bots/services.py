"""Writes of bot channels, the people and chats they serve, deliveries and account links.

Called from the callback views and the reply task (through
`database_sync_to_async`) and from the admin; conversations themselves are
written by `conversations.services` only.
"""

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from bots.models import BotChannel, BotChat, BotIdentity, Delivery, LinkCode
from conversations import services as conversation_services
from conversations.models import Conversation
from personas import crypto

# Link codes: 8 characters without look-alikes (0/O, 1/I/L), valid LINK_CODE_TTL.
LINK_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LINK_CODE_LENGTH = 8
LINK_CODE_TTL = timedelta(minutes=10)


@sensitive_variables("app_secret", "token", "aes_key")
def channel_set_secrets(
    *, channel: BotChannel, app_secret: str | None = None, token: str | None = None, aes_key: str | None = None
) -> BotChannel:
    """Store the given secrets encrypted on `channel` (None keeps one, "" clears it); return the saved channel."""
    fields = []
    for field, value in (
        ("app_secret_encrypted", app_secret),
        ("token_encrypted", token),
        ("aes_key_encrypted", aes_key),
    ):
        if value is not None:
            setattr(channel, field, crypto.encrypt(value) if value else "")
            fields.append(field)
    if fields:
        channel.save(update_fields=[*fields, "updated_at"])
    return channel


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _account_create(*, channel: BotChannel, key: str, label: str) -> User:
    """Create the site account of an IM person or group: no password, so nobody signs in with it."""
    username = f"{channel.kind}-{label}-{_digest(f'{channel.public_id}:{key}')[:12]}"
    user = get_user_model().objects.create_user(username=username)
    return user


def identity_get_or_create(*, channel: BotChannel, platform_user_id: str, union_id: str = "") -> BotIdentity:
    """Return the person's identity on `channel`, creating it with an account of their own the first time."""
    identity = (
        BotIdentity.objects.select_related("user").filter(channel=channel, platform_user_id=platform_user_id).first()
    )
    if identity is not None:
        return identity
    try:
        with transaction.atomic():
            user = _account_create(channel=channel, key=platform_user_id, label="user")
            return BotIdentity.objects.create(
                channel=channel, platform_user_id=platform_user_id, union_id=union_id, user=user
            )
    except IntegrityError:  # Another delivery of the same person created it meanwhile.
        return BotIdentity.objects.select_related("user").get(channel=channel, platform_user_id=platform_user_id)


def chat_get_or_create(*, channel: BotChannel, chat_id: str, is_group: bool, identity: BotIdentity) -> BotChat:
    """Return the IM chat `chat_id`, creating it the first time: owned by the person, or by the group's own account."""
    chat = BotChat.objects.select_related("owner", "conversation").filter(channel=channel, chat_id=chat_id).first()
    if chat is not None:
        return chat
    try:
        with transaction.atomic():
            owner = _account_create(channel=channel, key=chat_id, label="group") if is_group else identity.user
            return BotChat.objects.create(channel=channel, chat_id=chat_id, is_group=is_group, owner=owner)
    except IntegrityError:
        return BotChat.objects.select_related("owner", "conversation").get(channel=channel, chat_id=chat_id)


def chat_conversation(*, chat: BotChat, fresh: bool = False) -> Conversation:
    """Return the conversation that continues `chat`: its current one, or a new one with the channel's persona.

    A new one is started when `fresh` (the /new command), when there is none
    (or it was deleted or archived on the site), or when the channel's persona changed.
    """
    persona = chat.channel.persona
    current = chat.conversation
    if not fresh and current is not None and current.persona_id == persona.pk and not current.archived:
        return current
    conversation = conversation_services.conversation_create(owner=chat.owner, persona=persona)
    chat.conversation = conversation
    chat.save(update_fields=["conversation"])
    return conversation


def delivery_claim(*, channel: BotChannel, event_key: str, **fields) -> Delivery | None:
    """Record an incoming event once; return it, or None if `event_key` was seen before (a platform's retry)."""
    try:
        with transaction.atomic():
            return Delivery.objects.create(channel=channel, event_key=event_key[:128], **fields)
    except IntegrityError:
        return None


def delivery_update(*, delivery: Delivery, **fields) -> Delivery:
    """Save `fields` of `delivery` (state, reply, parts sent) at once, so a restart knows what was sent."""
    for name, value in fields.items():
        setattr(delivery, name, value)
    delivery.save(update_fields=[*fields, "updated_at"])
    return delivery


def link_code_create(*, user: User) -> str:
    """Return a new one-time code for `user` to send in an IM chat; their earlier codes stop working."""
    code = "".join(secrets.choice(LINK_CODE_ALPHABET) for _ in range(LINK_CODE_LENGTH))
    with transaction.atomic():
        LinkCode.objects.filter(user=user).delete()
        LinkCode.objects.create(user=user, code_hash=_digest(code), expires_at=timezone.now() + LINK_CODE_TTL)
    return code


def identity_link(*, identity: BotIdentity, code: str) -> User:
    """Link `identity` to the site user whose code this is; their IM chats move to that user's sidebar.

    The conversations and chats of the identity's own account move to the
    site user, with what it asked in group chats (`Message.asked_by`) and
    its day's usage (`DailyUsage`: the quota counts on), and that account is
    deleted. Returns the site user.

    Raises:
        ValidationError: an unknown, used or expired code, with a message for the chat.
    """
    with transaction.atomic():
        link = (
            LinkCode.objects.select_for_update()
            .select_related("user")
            .filter(code_hash=_digest(code.strip().upper()), expires_at__gt=timezone.now())
            .first()
        )
        if link is None:
            raise ValidationError(_("This code is unknown or expired. Get a new one on your account page."))
        site_user = link.user
        link.delete()
        previous = identity.user
        if previous.pk == site_user.pk:
            return site_user
        # Before its first link an identity's user is the account made for this person alone: it moves over
        # whole. A site account linked before keeps its chats.
        own_account = identity.linked_at is None
        if own_account:
            Conversation.objects.filter(owner=previous).update(owner=site_user)
            BotChat.objects.filter(owner=previous).update(owner=site_user)
            conversation_services.asked_move(from_user=previous, to_user=site_user)
        identity.user = site_user
        identity.linked_at = timezone.now()
        identity.save(update_fields=["user", "linked_at"])
        if own_account:
            previous.delete()
    return site_user
