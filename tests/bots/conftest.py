"""Fixtures of the bot tests: the fake Feishu and WeChat platforms on loopback, and channels pointed at them."""

import httpx2
import pytest

from bots import services
from bots.models import BotChannel
from tests.fakes.feishu_server import FakeFeishuServer
from tests.fakes.wechat_server import FakeWeChatServer

FEISHU_TOKEN = "verification-token-1"
FEISHU_ENCRYPT_KEY = "encrypt-key-for-tests"
WECHAT_TOKEN = "wechat-token-1"
WECHAT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture(scope="session")
def feishu_server():
    with FakeFeishuServer() as server:
        yield server


@pytest.fixture(scope="session")
def wechat_server():
    with FakeWeChatServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _bot_settings(settings, feishu_server, wechat_server):
    feishu_server.clear()
    wechat_server.clear()
    settings.BOTS_FEISHU_BASE_URL = feishu_server.base_url
    settings.BOTS_LARK_BASE_URL = feishu_server.base_url
    settings.BOTS_WECHAT_BASE_URL = wechat_server.base_url
    settings.BOTS_STREAM_INTERVAL_MS = 200
    settings.BOTS_API_BACKOFF_MS = 0
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "bots"}}
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def feishu_channel(persona, feishu_server):
    channel = BotChannel.objects.create(
        name="Feishu bot", kind=BotChannel.Kind.FEISHU, persona=persona, app_id=feishu_server.app_id
    )
    return services.channel_set_secrets(
        channel=channel, app_secret=feishu_server.app_secret, token=FEISHU_TOKEN, aes_key=FEISHU_ENCRYPT_KEY
    )


@pytest.fixture
def wechat_channel(persona, wechat_server):
    channel = BotChannel.objects.create(
        name="WeChat account",
        kind=BotChannel.Kind.WECHAT,
        persona=persona,
        app_id=wechat_server.app_id,
        message_mode=BotChannel.MessageMode.SAFE,
    )
    return services.channel_set_secrets(
        channel=channel, app_secret=wechat_server.app_secret, token=WECHAT_TOKEN, aes_key=WECHAT_AES_KEY
    )


@pytest.fixture
async def site():
    """An HTTP client of the real ASGI application (chatsite.asgi), in the test's event loop."""
    from chatsite.asgi import application

    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=application), base_url="http://testserver"
    ) as client:
        yield client
