"""Bot channels (one per platform connection), the people and chats they serve, and what was delivered.

Secrets are stored encrypted with `personas.crypto` (Fernet keys derived from
SECRET_KEY), like provider API keys; the admin never shows them back.
"""

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from personas import crypto


class BotChannel(models.Model):
    """A connection between one persona and one Feishu/Lark app or WeChat Official Account."""

    class Kind(models.TextChoices):
        FEISHU = "feishu", _("Feishu")
        LARK = "lark", _("Lark")
        WECHAT = "wechat", _("WeChat Official Account")

    class MessageMode(models.TextChoices):
        # WeChat's three message modes (消息加解密方式), as chosen in its console.
        PLAIN = "plain", _("plain text")
        COMPATIBLE = "compatible", _("compatible")
        SAFE = "safe", _("safe (encrypted)")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("platform"), max_length=16, choices=Kind.choices)
    persona = models.ForeignKey(
        "personas.Persona", on_delete=models.PROTECT, related_name="bot_channels", verbose_name=_("persona")
    )
    app_id = models.CharField(_("App ID"), max_length=100, help_text=_("Feishu/Lark App ID, or WeChat AppID."))
    app_secret_encrypted = models.TextField(blank=True, editable=False)
    # Feishu/Lark: the Verification Token; WeChat: the Token of the server configuration.
    token_encrypted = models.TextField(blank=True, editable=False)
    # Feishu/Lark: the Encrypt Key; WeChat: the EncodingAESKey (43 characters).
    aes_key_encrypted = models.TextField(blank=True, editable=False)
    message_mode = models.CharField(
        _("message mode (WeChat)"),
        max_length=16,
        choices=MessageMode.choices,
        default=MessageMode.SAFE,
        help_text=_("As set in the WeChat console; ignored for Feishu and Lark."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("bot channel")
        verbose_name_plural = _("bot channels")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        """Return the callback path to paste into the platform's console."""
        name = "bots:wechat-callback" if self.kind == self.Kind.WECHAT else "bots:feishu-callback"
        return reverse(name, kwargs={"public_id": self.public_id})

    @property
    def app_secret(self) -> str:
        return crypto.decrypt(self.app_secret_encrypted) if self.app_secret_encrypted else ""

    @property
    def token(self) -> str:
        return crypto.decrypt(self.token_encrypted) if self.token_encrypted else ""

    @property
    def aes_key(self) -> str:
        return crypto.decrypt(self.aes_key_encrypted) if self.aes_key_encrypted else ""


class BotIdentity(models.Model):
    """A person on a channel's platform, and the site user who holds their conversations.

    Until the person links their own site account, `user` is an account made
    for them alone (no password), so quotas, history and export work per person.
    """

    channel = models.ForeignKey(BotChannel, on_delete=models.CASCADE, related_name="identities")
    # Feishu/Lark open_id, or WeChat openid: unique per app.
    platform_user_id = models.CharField(max_length=128)
    union_id = models.CharField(max_length=128, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bot_identities")
    linked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("bot identity")
        verbose_name_plural = _("bot identities")
        constraints = [
            models.UniqueConstraint(fields=["channel", "platform_user_id"], name="botidentity_unique_per_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.channel}: {self.platform_user_id}"


class BotChat(models.Model):
    """One IM chat (a direct chat or a group) and the conversation that continues it.

    A direct chat's conversation belongs to the person's user; a group's to an
    account of the group's own, so the group has one shared history. Each
    member's message is asked by them (`Message.asked_by`): it counts toward
    their own quota and usage, never the group account's.
    """

    channel = models.ForeignKey(BotChannel, on_delete=models.CASCADE, related_name="chats")
    chat_id = models.CharField(max_length=128)
    is_group = models.BooleanField(default=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bot_chats")
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("bot chat")
        verbose_name_plural = _("bot chats")
        constraints = [models.UniqueConstraint(fields=["channel", "chat_id"], name="botchat_unique_per_channel")]

    def __str__(self) -> str:
        return f"{self.channel}: {self.chat_id}"


class Delivery(models.Model):
    """One incoming platform event and what was sent back for it; the event key deduplicates retries.

    `parts` records every platform message sent for the reply, as they are
    sent (`[{"message_id": "...", "chars": N}]`: N characters of that part
    shown), so a restarted site finishes them in place instead of sending again.
    """

    class State(models.TextChoices):
        RECEIVED = "received", _("received")
        REPLYING = "replying", _("replying")
        DONE = "done", _("done")

    channel = models.ForeignKey(BotChannel, on_delete=models.CASCADE, related_name="deliveries")
    # Feishu: header.event_id; WeChat: MsgId, or FromUserName + CreateTime for events (WeChat's advice).
    event_key = models.CharField(max_length=128)
    chat = models.ForeignKey(BotChat, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries")
    # The platform's id of the person's message (Feishu replies thread to it) and their open_id.
    source_message_id = models.CharField(max_length=128, blank=True)
    sender_id = models.CharField(max_length=128, blank=True)
    text = models.TextField(blank=True)
    # The event as received (decrypted), until it is answered: what a restarted site needs to answer it.
    payload = models.JSONField(default=dict, blank=True)
    reply = models.ForeignKey(
        "conversations.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    parts = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [models.UniqueConstraint(fields=["channel", "event_key"], name="delivery_unique_event")]
        indexes = [models.Index(fields=["state", "updated_at"], name="delivery_state_updated")]

    def __str__(self) -> str:
        return f"{self.channel}: {self.event_key}"


class LinkCode(models.Model):
    """A one-time code a site user shows on their account page and sends in an IM chat to link it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bot_link_codes")
    # SHA-256 of the code: a database reader cannot use a pending code.
    code_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user} until {self.expires_at}"
