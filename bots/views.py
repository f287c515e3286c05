"""The platforms' callbacks (Feishu/Lark events, WeChat messages) and the account page's linking section.

Database calls go through asgiref's `sync_to_async` (Django's request
cycle manages their connections); the answers started in the background use
Channels' `database_sync_to_async`, which closes stale connections.

Callbacks are CSRF-exempt (the platforms sign them instead) and refuse,
before anything is written: an unknown or disabled channel (404), a body
over `settings.BOTS_MAX_BODY_BYTES` or malformed (400), a bad signature,
token or decryption, or a timestamp too far from now (403).
"""

import logging
import secrets

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from bots import feishu, feishu_bot, replies, resume, selectors, services, wechat, wechat_bot
from bots.models import BotChannel, Delivery
from bots.text import markdown_to_plain
from conversations.views.shortcuts import AuthenticatedHttpRequest, render_page

logger = logging.getLogger(__name__)


@sync_to_async
def _channel(public_id, kinds: tuple[str, ...]) -> BotChannel:
    try:
        return selectors.channel_get_enabled(public_id=public_id, kinds=kinds)
    except BotChannel.DoesNotExist:
        raise Http404("No such bot channel.") from None


def _body(request: HttpRequest) -> bytes | None:
    """Return the request body, or None when it is over BOTS_MAX_BODY_BYTES (checked before reading it)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if declared > settings.BOTS_MAX_BODY_BYTES:
        return None
    body = request.body
    return body if len(body) <= settings.BOTS_MAX_BODY_BYTES else None


@csrf_exempt
@require_POST
async def feishu_callback(request: HttpRequest, public_id) -> HttpResponse:
    """Take a Feishu or Lark event: answer the URL check, record a message event and answer it in the background."""
    channel = await _channel(public_id, (BotChannel.Kind.FEISHU, BotChannel.Kind.LARK))
    body = _body(request)
    if body is None:
        return HttpResponseBadRequest("The body is too large.")
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        payload = feishu.callback_payload(
            body=body, headers=headers, verification_token=channel.token, encrypt_key=channel.aes_key
        )
    except feishu.CallbackRefused as exc:
        logger.info("Feishu callback of channel %s refused: %s", channel.pk, exc)
        return HttpResponse(str(exc), status=exc.status, content_type="text/plain")
    if payload.get("type") == "url_verification":
        return JsonResponse({"challenge": str(payload.get("challenge") or "")})
    header = payload.get("header") or {}
    if header.get("event_type") == "im.message.receive_v1" and header.get("event_id"):
        delivery = await sync_to_async(services.delivery_claim)(
            channel=channel, event_key=str(header["event_id"]), payload=payload
        )
        if delivery is not None:
            replies.start_background(feishu_bot.handle(delivery=delivery))
        replies.start_background(resume.resume_stale(channel=channel))
    return JsonResponse({})


@csrf_exempt
@require_http_methods(["GET", "POST"])
@sensitive_variables("token")
async def wechat_callback(request: HttpRequest, public_id) -> HttpResponse:
    """Take a WeChat server check (GET: echo `echostr`) or message (POST: a passive reply or "success")."""
    channel = await _channel(public_id, (BotChannel.Kind.WECHAT,))
    query = request.GET
    token = channel.token
    try:
        wechat.check_signature(
            token=token,
            timestamp=query.get("timestamp", ""),
            nonce=query.get("nonce", ""),
            given=query.get("signature", ""),
        )
    except wechat.CallbackRefused as exc:
        logger.info("WeChat callback of channel %s refused: %s", channel.pk, exc)
        return HttpResponse(str(exc), status=exc.status, content_type="text/plain")
    if request.method == "GET":
        return HttpResponse(query.get("echostr", ""), content_type="text/plain")
    body = _body(request)
    if body is None:
        return HttpResponseBadRequest("The body is too large.")
    encrypted = query.get("encrypt_type") == "aes"
    try:
        message = _wechat_message(channel=channel, body=body, encrypted=encrypted, query=query)
    except wechat.CallbackRefused as exc:
        logger.info("WeChat message of channel %s refused: %s", channel.pk, exc)
        return HttpResponse(str(exc), status=exc.status, content_type="text/plain")
    reply = await _wechat_reply(channel=channel, message=message)
    if reply is None:
        return HttpResponse("success", content_type="text/plain")
    xml = wechat.text_reply_xml(
        to_user=message.get("FromUserName", ""), from_user=message.get("ToUserName", ""), content=reply
    )
    if encrypted:
        xml = wechat.encrypted_reply_xml(
            token=token,
            encoding_aes_key=channel.aes_key,
            app_id=channel.app_id,
            reply_xml=xml,
            nonce=secrets.token_hex(8),
        )
    return HttpResponse(xml, content_type="application/xml")


def _wechat_message(*, channel: BotChannel, body: bytes, encrypted: bool, query) -> dict[str, str]:
    """Return the message's fields, decrypted when it is; safe mode refuses a plain one.

    Raises:
        wechat.CallbackRefused: malformed (400), or a bad msg_signature or encryption (403).
    """
    outer = wechat.parse_xml(body)
    if not encrypted:
        if channel.message_mode == BotChannel.MessageMode.SAFE:
            raise wechat.CallbackRefused("The channel is in safe mode but the message is not encrypted.", status=403)
        return outer
    encrypt = outer.get("Encrypt", "")
    wechat.check_signature(
        token=channel.token,
        timestamp=query.get("timestamp", ""),
        nonce=query.get("nonce", ""),
        given=query.get("msg_signature", ""),
        encrypted=encrypt,
    )
    inner = wechat.decrypt(encoding_aes_key=channel.aes_key, app_id=channel.app_id, encrypted=encrypt)
    return wechat.parse_xml(inner)


async def _wechat_reply(*, channel: BotChannel, message: dict[str, str]) -> str | None:
    """Return the passive reply's text for `message`, or None to answer "success"."""
    kind = message.get("MsgType")
    if kind == "event":
        if message.get("Event") != "subscribe":
            return None  # Unsubscribe, menu clicks...: nothing to say.
        delivery = await sync_to_async(wechat_bot.record)(channel=channel, message=message)
        if delivery is None:
            return None
        await sync_to_async(services.delivery_update)(delivery=delivery, state=Delivery.State.DONE)
        greeting = channel.persona.greeting.strip()
        return markdown_to_plain(greeting) if greeting else None
    delivery = await sync_to_async(wechat_bot.record)(channel=channel, message=message)
    replies.start_background(resume.resume_stale(channel=channel))
    if delivery is None:  # WeChat's retry of a message already being answered.
        return None
    return await wechat_bot.answer(delivery=delivery)


@login_required
@require_POST
def account_links(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Make a new one-time link code for the account page's chat-apps section; show it (htmx: the section only)."""
    context = {"code": services.link_code_create(user=request.user)}
    return render_page(request, "bots/account_links.html", "accounts/sections/im_links.html", context)
