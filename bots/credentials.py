"""The admin's "Test credentials": fetch an access token with a channel's App ID and secret."""

from asgiref.sync import async_to_sync
from django.utils.translation import gettext as _

from bots import feishu_bot, wechat_bot
from bots.models import BotChannel


def channel_test(*, channel: BotChannel) -> str:
    """Fetch an access token for `channel`; return a sentence saying the platform accepted the credentials.

    Raises:
        bots.http.PlatformError: unreachable, or the platform's refusal (its code and message).
        personas.crypto.DecryptionError: the stored App Secret cannot be decrypted.
    """
    api = wechat_bot.api_for(channel) if channel.kind == BotChannel.Kind.WECHAT else feishu_bot.api_for(channel)
    _token, expire_s = async_to_sync(api.fetch_token)()
    return _("%(channel)s: %(platform)s accepted the credentials (access token valid %(minutes)d min).") % {
        "channel": channel.name,
        "platform": channel.get_kind_display(),
        "minutes": expire_s // 60,
    }
