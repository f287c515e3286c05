"""IM people get site accounts of their own, and a site user links their IM chat from the account page."""

import io
import zipfile

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.urls import reverse

from bots import services
from bots.models import BotIdentity, Delivery, LinkCode
from conversations.models import Conversation
from tests.bots.conftest import FEISHU_TOKEN
from tests.bots.test_feishu import deliveries_done, message_in, post_event
from tests.fakes.feishu_server import message_event
from tests.waiting import async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)


async def say(site, channel, text, **kwargs):
    event = message_event(text=text, token=FEISHU_TOKEN, **kwargs)
    await post_event(site, channel, event)
    await async_wait_until(deliveries_done, timeout_s=20)
    return event


async def test_each_im_person_gets_an_account_of_their_own(site, feishu_channel):
    await say(site, feishu_channel, "hi from one", open_id="ou_one", chat_id="oc_one")
    await say(site, feishu_channel, "hi from two", open_id="ou_two", chat_id="oc_two")

    owners = {c.owner_id async for c in Conversation.objects.all()}
    assert len(owners) == 2
    identity = await BotIdentity.objects.select_related("user").aget(platform_user_id="ou_one")
    assert not identity.user.has_usable_password()


async def test_a_linked_chat_is_in_the_site_users_sidebar_and_export(
    site, feishu_channel, feishu_server, alice, client
):
    await say(site, feishu_channel, "question before linking")
    shadow = (await BotIdentity.objects.select_related("user").aget()).user
    code = await sync_to_async(services.link_code_create)(user=alice)

    linked = await say(site, feishu_channel, f"/link {code.lower()}")
    await say(site, feishu_channel, "question after linking")

    [said] = feishu_server.replies_to(message_in(linked))
    assert "alice" in said.text
    conversation = await Conversation.objects.aget()
    assert conversation.owner_id == alice.pk
    assert not await get_user_model().objects.filter(pk=shadow.pk).aexists()
    assert await conversation.messages.filter(role="user").acount() == 2

    def site_pages():
        client.force_login(alice)
        export = client.get(reverse("transfer:export-all"))
        return client.get(reverse("conversations:conversation-new")), b"".join(export.streaming_content)

    page, export = await sync_to_async(site_pages)()
    assert conversation.get_absolute_url() in page.content.decode()  # in the sidebar
    archive = zipfile.ZipFile(io.BytesIO(export))
    exported = "".join(archive.read(name).decode() for name in archive.namelist())
    assert "question before linking" in exported and "question after linking" in exported


async def test_a_wrong_or_used_code_links_nothing(site, feishu_channel, feishu_server, alice):
    code = await sync_to_async(services.link_code_create)(user=alice)
    await say(site, feishu_channel, f"/link {code}")
    event = await say(site, feishu_channel, f"/link {code}")  # used already
    [said] = feishu_server.replies_to(message_in(event))
    assert "unknown or expired" in said.text
    wrong = await say(site, feishu_channel, "/link ZZZZZZZZ", open_id="ou_other", chat_id="oc_other")
    assert "unknown or expired" in feishu_server.replies_to(message_in(wrong))[0].text
    other = await BotIdentity.objects.aget(platform_user_id="ou_other")
    assert other.user_id != alice.pk and other.linked_at is None


async def test_link_is_refused_in_a_group(site, feishu_channel, feishu_server, alice):
    code = await sync_to_async(services.link_code_create)(user=alice)
    event = await say(site, feishu_channel, f"/link {code}", chat_id="oc_g", chat_type="group", mention_bot=True)
    assert "direct chat" in feishu_server.replies_to(message_in(event))[0].text
    assert await LinkCode.objects.aexists()
    assert await Delivery.objects.acount() == 1


def test_account_page_shows_the_chat_apps_section(client, alice):
    client.force_login(alice)
    response = client.get(reverse("account"))
    assert response.status_code == 200
    assert reverse("bots:account-links") in response.content.decode()


def test_getting_a_link_code_shows_it_once(client, alice):
    client.force_login(alice)
    response = client.post(reverse("bots:account-links"), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "/link " in response.content.decode()
    assert LinkCode.objects.filter(user=alice).count() == 1
    assert 'id="account-im"' in response.content.decode() and "<html" not in response.content.decode()


def test_getting_a_link_code_without_htmx_renders_the_page(client, alice):
    client.force_login(alice)
    response = client.post(reverse("bots:account-links"))
    assert response.status_code == 200 and "<html" in response.content.decode()


def test_anonymous_cannot_get_a_link_code(client):
    response = client.post(reverse("bots:account-links"))
    assert response.status_code == 302
    assert not LinkCode.objects.exists()


def test_a_linked_identity_is_listed_only_for_its_user(client, alice, bob, feishu_channel):
    identity = services.identity_get_or_create(channel=feishu_channel, platform_user_id="ou_x")
    services.identity_link(identity=identity, code=services.link_code_create(user=alice))
    client.force_login(alice)
    assert "Feishu bot" in client.get(reverse("account")).content.decode()
    client.force_login(bob)
    assert "Feishu bot" not in client.get(reverse("account")).content.decode()
