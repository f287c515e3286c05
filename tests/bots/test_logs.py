"""No secret reaches the logs: full Feishu and WeChat exchanges, retries and refusals included, logged at DEBUG."""

import logging

import pytest
from asgiref.sync import sync_to_async

from tests.bots.conftest import FEISHU_ENCRYPT_KEY, FEISHU_TOKEN, WECHAT_AES_KEY, WECHAT_TOKEN
from tests.bots.test_feishu import deliveries_done, post_event
from tests.bots.test_wechat import post_message
from tests.fakes.feishu_server import event_request, message_event
from tests.fakes.wechat_server import text_xml
from tests.waiting import async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def leaked(caplog, secrets: set[str]) -> set[str]:
    """Return the secrets found in any captured record: its message, arguments or traceback."""
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    return {secret for secret in secrets if secret in logged}


async def test_a_feishu_exchange_logs_no_secret(site, feishu_channel, feishu_server, make_persona, caplog):
    caplog.set_level(logging.DEBUG)
    feishu_channel.persona = await sync_to_async(make_persona)("long:20+delay:10", slug="streamed")
    await feishu_channel.asave(update_fields=["persona"])
    check = {"challenge": "ch-1", "token": FEISHU_TOKEN, "type": "url_verification"}
    assert (await post_event(site, feishu_channel, check)).status_code == 200
    await post_event(site, feishu_channel, message_event(text="first", token=FEISHU_TOKEN))
    await async_wait_until(deliveries_done, timeout_s=20)
    tokens = set(feishu_server.tokens)
    feishu_server.revoke_tokens()  # the next call is refused, the token fetched again, and failures retried
    feishu_server.fail_next(2)
    await post_event(site, feishu_channel, message_event(text="second", token=FEISHU_TOKEN))
    await async_wait_until(deliveries_done, timeout_s=20)
    forged_body, forged_headers = event_request(message_event(text="x", token=FEISHU_TOKEN), encrypt_key="wrong key")
    url = f"/bots/feishu/{feishu_channel.public_id}/"
    assert (await site.post(url, content=forged_body, headers=forged_headers)).status_code == 403
    tokens |= feishu_server.tokens

    assert feishu_server.token_requests == 2 and len(feishu_server.messages) == 2 and tokens
    assert any("retrying" in record.getMessage() for record in caplog.records)  # the logs were captured
    assert leaked(caplog, {feishu_server.app_secret, FEISHU_TOKEN, FEISHU_ENCRYPT_KEY, *tokens}) == set()


async def test_a_wechat_exchange_logs_no_secret(site, wechat_channel, wechat_server, make_persona, settings, caplog):
    caplog.set_level(logging.DEBUG)
    assert (await post_message(site, wechat_channel, text_xml(text="quick"))).status_code == 200
    settings.BOTS_WECHAT_PASSIVE_WAIT_MS = 50  # too slow for a passive reply: the customer service API sends it
    wechat_channel.persona = await sync_to_async(make_persona)("long:10+delay:40", slug="slow")
    await wechat_channel.asave(update_fields=["persona"])
    await post_message(site, wechat_channel, text_xml(text="slow one", open_id="o_slow"))
    await async_wait_until(lambda: wechat_server.sent, timeout_s=20)
    await async_wait_until(deliveries_done, timeout_s=20)
    forged = await post_message(site, wechat_channel, text_xml(text="x"), nonce="1", timestamp=1)

    assert forged.status_code == 403 and wechat_server.tokens
    assert any("refused" in record.getMessage() for record in caplog.records)  # the logs were captured
    secrets = {wechat_server.app_secret, WECHAT_TOKEN, WECHAT_AES_KEY, *wechat_server.tokens}
    assert leaked(caplog, secrets) == set()
