"""In the browser: share a chat, another user opens the link and continues it, the owner revokes it (404)."""

import re

import pytest
from playwright.sync_api import Page, expect

from conversations import services
from tests.e2e.pages import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def log_in(page: Page, site, user) -> None:
    page.context.clear_cookies()
    sign_in(page.context, site, user)


@pytest.fixture
def chat(alice, make_persona):
    persona = make_persona(system_prompt="TOP-SECRET persona instructions")
    conversation = services.conversation_create(owner=alice, persona=persona)
    sent = services.message_send(conversation=conversation, text="How do tides work?")
    services.reply_finish(message=sent.assistant_message, content="The **Moon** pulls the oceans.", status="complete")
    services.conversation_rename(conversation=conversation, title="Tides")
    return conversation


def test_a_share_link_opened_by_another_user_then_revoked(chat, page: Page, site, alice, bob, browser_loop, screenshot):
    log_in(page, site, alice)
    page.goto(site.url(chat.get_absolute_url()))
    page.click("#share-link")
    page.click("#share-create")
    link = page.locator("#share-url").input_value()
    assert re.fullmatch(re.escape(site.url("/s/")) + r"[A-Za-z0-9_-]{43}/", link)
    screenshot("share-panel")
    with browser_loop.paused():  # message_send broadcasts through async_to_sync
        services.message_send(conversation=chat, text="A question after sharing")

    log_in(page, site, bob)
    page.goto(link)
    expect(page.locator("#shared-messages")).to_contain_text("How do tides work?")
    expect(page.locator("#shared-messages strong")).to_have_text("Moon")  # the stored, rendered HTML
    expect(page.locator("#shared-chat")).not_to_contain_text("A question after sharing")
    expect(page.locator("body")).not_to_contain_text("TOP-SECRET")
    expect(page.locator("body")).not_to_contain_text("alice")
    screenshot("shared-page")
    page.click("#shared-continue")
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    assert page.url != site.url(chat.get_absolute_url())
    expect(page.locator("#messages")).to_contain_text("The Moon pulls the oceans.")
    expect(page.locator("#composer textarea")).to_be_visible()

    log_in(page, site, alice)
    page.goto(site.url(chat.get_absolute_url()))
    page.click("#share-link")
    page.click("#share-revoke")
    expect(page.locator("#share-url")).to_have_count(0)

    log_in(page, site, bob)
    response = page.goto(link)
    assert response is not None and response.status == 404


def test_a_signed_out_visitor_is_asked_to_sign_in(chat, page: Page, site, alice):
    log_in(page, site, alice)
    page.goto(site.url(chat.get_absolute_url()))
    page.click("#share-link")
    page.click("#share-create")
    link = page.locator("#share-url").input_value()
    page.context.clear_cookies()
    page.goto(link)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/s/"))
