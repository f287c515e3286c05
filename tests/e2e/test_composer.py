"""In Chromium: nothing typed is lost, one reply at a time, the view follows the reply, the socket's state is shown.

Also: a chat saved only at its first message, an imported ChatGPT chat
continued with a chosen persona, Continue after a cut-off reply, the tab
title, Copy giving Markdown, touch keyboards, the context line.
"""

import json
import re

import pytest
from playwright.sync_api import Page, expect

from accounts.models import UsageLimit
from conversations import services
from conversations.models import Conversation, Message
from personas.models import ChatModel
from tests.e2e.pages import open_new_chat, sign_in
from transfer.importers import parse_chatgpt_export
from transfer.jobs import conversations_import

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ASSISTANT = "article.message[data-role=assistant]"
USER = "article.message[data-role=user]"
COMPOSER = "#composer textarea[name=message]"
ALERT = "#composer-alert"


def new_chat(page: Page, site, persona) -> None:
    page.goto(site.url("/"))
    open_new_chat(page, persona)
    expect(page.locator(COMPOSER)).to_be_visible()


def send(page: Page, text: str) -> None:
    page.locator(COMPOSER).fill(text)
    page.locator(COMPOSER).press("Enter")


def open_conversation(page: Page, site, conversation) -> None:
    page.goto(site.url(conversation.get_absolute_url()))
    page.wait_for_function("() => document.querySelector('.chat').dataset.connection === 'open'")


def from_end(page: Page) -> float:
    return page.evaluate(
        "() => { const l = document.getElementById('messages'); return l.scrollHeight - l.scrollTop - l.clientHeight; }"
    )


# Nothing typed is lost


def test_a_refused_first_message_stays_in_the_composer_with_its_reason(
    logged_in, site, make_persona, alice, screenshot
):
    page = logged_in
    persona = make_persona("long:3", slug="small", greeting="Hi.")
    ChatModel.objects.filter(pk=persona.model_id).update(context_window=300, max_output_tokens=100)
    text = "很长的问题。" * 300
    new_chat(page, site, persona)
    send(page, text)
    expect(page.locator(ALERT)).to_contain_text("Shorten it or start a new chat")
    expect(page.locator(COMPOSER)).to_have_value(text)
    expect(page.locator(COMPOSER)).to_be_editable()
    screenshot("refused")
    assert not Conversation.objects.exists()

    send(page, "A short question")  # Edited down: now taken, and the chat is created.
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    expect(page.locator(f"{USER} .message-body")).to_have_text(["A short question"])
    expect(page.locator(COMPOSER)).to_have_value("")
    expect(page.locator(ALERT)).to_be_empty()


def test_a_message_refused_over_the_socket_stays_in_the_composer(logged_in, site, make_persona, alice):
    page = logged_in
    conversation = services.conversation_create(owner=alice, persona=make_persona("long:3"))
    UsageLimit.objects.create(user=alice, daily_tokens=1)
    services.usage_add(user_id=alice.pk, started_at=conversation.created_at, tokens=5)
    open_conversation(page, site, conversation)
    send(page, "Will this go?")
    expect(page.locator(ALERT)).to_contain_text("You have used today’s 1 token")
    expect(page.locator(COMPOSER)).to_have_value("Will this go?")
    expect(page.locator(USER)).to_have_count(0)


# One reply at a time


def test_send_turns_into_stop_and_no_second_reply_starts_while_one_streams(
    logged_in, site, make_persona, alice, screenshot
):
    page = logged_in
    sockets = []

    def relay(ws) -> None:
        server = ws.connect_to_server()
        sockets.append(server)

    page.route_web_socket(re.compile(r"/ws/conversations/"), relay)
    conversation = services.conversation_create(owner=alice, persona=make_persona("long:400+delay:30"))
    open_conversation(page, site, conversation)
    send(page, "Tell me a long story")
    expect(page.locator(f"{ASSISTANT}[data-status=streaming]")).to_have_count(1)
    expect(page.locator("#stop")).to_be_visible()
    expect(page.locator("#send")).to_be_hidden()

    send(page, "And another thing")  # Enter while the reply streams: nothing is sent, the text stays.
    expect(page.locator(COMPOSER)).to_have_value("And another thing")
    # The server refuses too, whatever a page sends.
    sockets[-1].send(json.dumps({"action": "send", "message": "parallel", "idempotency_key": "x"}))
    expect(page.locator(ALERT)).to_have_text("Wait for the reply to finish, or stop it, first.")
    screenshot("stop")
    assert Message.objects.filter(role="user").count() == 1

    page.locator(COMPOSER).press("Escape")  # Esc stops the reply.
    expect(page.locator(f"{ASSISTANT}").last).to_have_attribute("data-status", "stopped")
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()
    page.locator("#send").click()
    expect(page.locator(USER)).to_have_count(2)
    expect(page.locator(COMPOSER)).to_have_value("")


# The view follows the reply


def test_the_view_follows_a_tall_reply_until_the_reader_scrolls_up(logged_in, site, make_persona, alice, screenshot):
    page = logged_in
    conversation = services.conversation_create(owner=alice, persona=make_persona("long:3000+delay:5"))
    open_conversation(page, site, conversation)
    # A question taller than the page's old 120 px leeway: the first frame alone used to stop the following.
    send(page, "Write a very long answer about:\n" + "\n".join(f"- point {n}" for n in range(12)))
    # Taller than the view, and still at its end while it grows.
    page.wait_for_function(
        """() => { const l = document.getElementById('messages');
                   return l.scrollHeight > 2 * l.clientHeight
                       && l.scrollHeight - l.scrollTop - l.clientHeight < 40; }"""
    )
    expect(page.locator("#jump-latest")).to_be_hidden()

    page.locator("#messages").hover()
    page.mouse.wheel(0, -600)
    expect(page.locator("#jump-latest")).to_be_visible()
    grown = page.evaluate("() => document.getElementById('messages').scrollHeight")
    page.wait_for_function(f"() => document.getElementById('messages').scrollHeight > {grown} + 300")
    assert from_end(page) > 500  # Left where the reader went while the reply grew below.
    screenshot("jump-to-latest")
    expect(page.locator("#jump-latest")).to_be_visible()

    page.locator("#jump-latest").click()
    expect(page.locator("#jump-latest")).to_be_hidden()
    page.wait_for_function(f"() => document.getElementById('messages').scrollHeight > {grown} + 400")
    assert from_end(page) < 40  # Following again.
    page.locator("#stop").click()
    expect(page.locator(ASSISTANT).last).to_have_attribute("data-status", "stopped")


# The socket's state


def test_reconnecting_is_shown_and_a_message_caught_by_the_drop_is_sent_once(
    logged_in, site, make_persona, alice, screenshot
):
    page = logged_in
    state = {"down": False, "drop_after_send": False}
    pages = []

    def relay(ws) -> None:
        if state["down"]:
            ws.close(code=1011)
            return
        server = ws.connect_to_server()
        pages.append(ws)

        def to_server(message) -> None:
            server.send(message)
            if state["drop_after_send"] and json.loads(message).get("action") == "send":
                state["drop_after_send"] = False
                state["down"] = True
                ws.close(code=1011)  # Before its answer reaches the page.

        ws.on_message(to_server)

    page.route_web_socket(re.compile(r"/ws/conversations/"), relay)
    conversation = services.conversation_create(owner=alice, persona=make_persona("long:3"))
    open_conversation(page, site, conversation)

    state["drop_after_send"] = True
    send(page, "Sent as the line drops")
    status = page.locator("#connection-status")
    expect(status).to_be_visible()
    expect(status).to_contain_text("Reconnecting")
    expect(status).to_contain_text("will be sent when the connection is back")
    expect(page.locator(COMPOSER)).to_have_value("Sent as the line drops")
    expect(page.locator("#send")).to_be_disabled()
    screenshot("reconnecting")
    # Meanwhile another tab added to the conversation: the page catches up after the reconnect.
    Message.objects.create(conversation=conversation, role="user", content="Written in another tab")

    state["down"] = False
    expect(status).to_be_hidden(timeout=20_000)
    expect(page.locator(COMPOSER)).to_have_value("")
    expect(page.locator(USER).filter(has_text="Written in another tab")).to_have_count(1)
    expect(page.locator(ASSISTANT).last).to_have_attribute("data-status", "complete")
    assert Message.objects.filter(role="user", content="Sent as the line drops").count() == 1


# A chat is saved at its first message


def test_a_chat_is_created_only_when_its_first_message_is_sent(logged_in, site, make_persona, alice):
    page = logged_in
    persona = make_persona("long:3", slug="quick", name="Quick", greeting="Hi there.")
    new_chat(page, site, persona)
    expect(page.locator(ASSISTANT).first).to_contain_text("Hi there.")
    expect(page.locator("#context-budget")).to_contain_text("The greeting is in context")
    page.goto(site.url("/"))
    new_chat(page, site, persona)
    expect(page.locator("#conversations")).to_contain_text("No conversations yet.")
    assert not Conversation.objects.exists()

    send(page, "Plan a picnic")
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    expect(page.locator("#conversations .conversation-item")).to_have_count(1)
    expect(page.locator(ASSISTANT).last).to_have_attribute("data-status", "complete")
    expect(page).to_have_title(re.compile(r" · Chat$"))
    assert Conversation.objects.count() == 1
    send(page, "And a second message")  # The socket of the new chat is live.
    expect(page.locator(USER)).to_have_count(2)


# An imported chat whose persona is gone


def test_an_imported_chatgpt_conversation_is_continued_with_a_chosen_persona(
    logged_in, site, make_persona, alice, screenshot
):
    page = logged_in
    make_persona("fake-echo", slug="tutor", name="Tutor")
    document = [
        {
            "title": "Old ChatGPT chat",
            "current_node": "b",
            "mapping": {
                "a": {
                    "parent": None,
                    "message": {"author": {"role": "user"}, "content": {"content_type": "text", "parts": ["Hello?"]}},
                },
                "b": {
                    "parent": "a",
                    "message": {"author": {"role": "assistant"}, "content": {"content_type": "text", "parts": ["Hi!"]}},
                },
            },
        }
    ]
    conversations_import(owner=alice, conversations=parse_chatgpt_export(document).conversations)
    conversation = Conversation.objects.get(owner=alice)
    open_conversation(page, site, conversation)
    expect(page.locator(".chat-title")).to_have_text("Deleted persona")

    send(page, "Can we go on?")
    expect(page.locator(ALERT)).to_contain_text("persona is no longer available")
    expect(page.locator(COMPOSER)).to_have_value("Can we go on?")
    screenshot("persona-choice")

    page.locator("#persona-choice select").select_option("tutor")
    page.locator("#persona-choice button").click()
    expect(page.locator(".chat-title")).to_have_text("Tutor")
    expect(page.locator("#persona-choice")).to_have_count(0)
    expect(page.locator(COMPOSER)).to_have_value("Can we go on?")  # Still there.
    page.locator("#send").click()
    expect(page.locator(ASSISTANT).last).to_contain_text("You said: Can we go on?")
    expect(page.locator(COMPOSER)).to_have_value("")


# Continue


def test_continue_after_a_reply_cut_off_by_its_length(logged_in, site, make_persona, alice, screenshot):
    page = logged_in
    conversation = services.conversation_create(owner=alice, persona=make_persona("long:4+finish:length"))
    open_conversation(page, site, conversation)
    send(page, "Write a lot")
    cut = page.locator(ASSISTANT).last
    expect(cut).to_contain_text("cut off")
    cut.locator(".action-continue").click()
    expect(page.locator(f"{USER} .message-body").last).to_have_text("Continue from where you stopped.")
    expect(page.locator(ASSISTANT)).to_have_count(3)
    expect(page.locator(ASSISTANT).last).to_have_attribute("data-status", "complete")
    # Only the last cut-off reply offers it.
    expect(page.locator(".action-continue").first).to_be_hidden()
    expect(page.locator(ASSISTANT).last.locator(".action-continue")).to_be_visible()
    screenshot("continue")


# Title, copy, touch


def test_the_tab_title_follows_renames_and_copy_gives_markdown(logged_in, site, make_persona, alice):
    page = logged_in
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url("/").rstrip("/"))
    conversation = services.conversation_create(owner=alice, persona=make_persona("fake-echo"))
    open_conversation(page, site, conversation)
    expect(page).to_have_title("New chat · Chat")
    send(page, "Show me a list")
    reply = page.locator(f"{ASSISTANT}[data-status=complete]").last
    expect(reply.locator("pre")).to_be_visible()
    expect(page).not_to_have_title("New chat · Chat")  # The first message's title, then the model's.

    page.click(f"#conversation-{conversation.public_id}-heading")  # Rename in the header.
    title = page.locator(".rename-form input[name=title]")
    title.fill("Lists and code")
    title.press("Enter")
    expect(page).to_have_title("Lists and code · Chat")

    reply.locator(".action-copy").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "**Show me a list**" in copied and "```python" in copied and "Copied" not in copied


def test_on_a_touch_keyboard_enter_adds_a_line_and_send_sends(page, browser, site, alice, make_persona):
    conversation = services.conversation_create(owner=alice, persona=make_persona("long:2"))
    # A phone's context, next to the `page` fixture's (which marks Playwright's loop as running).
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        sign_in(context, site, alice)
        open_conversation(page, site, conversation)
        box = page.locator(COMPOSER)
        box.fill("first line")
        box.press("Enter")
        box.type("second line")
        expect(box).to_have_value("first line\nsecond line")
        expect(page.locator(USER)).to_have_count(0)
        page.locator("#send").tap()
        expect(page.locator(USER)).to_have_count(1)
        expect(box).to_have_value("")
    finally:
        context.close()
