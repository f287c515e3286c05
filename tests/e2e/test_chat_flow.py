"""A person's first visit, end to end: sign up, pick a persona, watch a reply stream in Chromium.

The site runs in a daphne process (tests/servers.py) on the test database,
the upstream is the fake OpenAI server; rows the test makes are committed
(`transaction=True`) so the server sees them.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from tests.e2e.pages import open_new_chat

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-42"
ASSISTANT = "article.message[data-role=assistant]"
USER = "article.message[data-role=user]"
COMPOSER = "#composer textarea[name=message]"


def _sign_up(page: Page, site, username: str) -> None:
    """Go from the home page, through the login redirect, to a new account's persona picker."""
    page.goto(site.url("/"))
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.locator("a[href*='/accounts/signup/']").first.click()
    expect(page).to_have_url(re.compile(r"/accounts/signup/"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.locator("form:has(input[name=password2]) [type=submit]").click()
    expect(page).to_have_url(site.url("/"))


def _open_chat(page: Page, persona) -> None:
    """Click the persona's card and wait for the new chat with its greeting (saved once a message is sent)."""
    open_new_chat(page, persona)
    expect(page.locator(ASSISTANT).first).to_contain_text(persona.greeting)


def _send(page: Page, text: str) -> None:
    composer = page.locator(COMPOSER)
    composer.fill(text)
    composer.press("Enter")


def test_first_visitor_signs_up_chats_and_sees_the_reply_stream_then_render(page, site, make_persona, screenshot):
    persona = make_persona("long:60+delay:25", name="Slow talker", slug="slow", greeting="Hi, I talk slowly.")

    _sign_up(page, site, "first")
    expect(page.locator(f"button.persona-card[data-persona='{persona.slug}']")).to_contain_text("Slow talker")
    screenshot("picker")
    _open_chat(page, persona)
    _send(page, "Tell me something long")

    expect(page.locator(USER)).to_have_count(1)
    expect(page.locator(USER).first).to_contain_text("Tell me something long")
    expect(page.locator(COMPOSER)).to_have_value("")
    # Mid-stream: part of the text is on the page while Stop is offered.
    page.wait_for_function(
        """() => {
            const body = document.querySelector(
                'article.message[data-role=assistant][data-status=streaming] .message-body');
            const stop = document.getElementById('stop');
            return body && body.textContent.trim().length > 0 && stop && !stop.hidden
                && stop.offsetParent !== null;
        }"""
    )
    partial = page.locator(f"{ASSISTANT}[data-status=streaming] .message-body").inner_text()
    assert partial.startswith("w0")
    screenshot("streaming")

    final = page.locator(f"{ASSISTANT}[data-status=complete]").last
    expect(final.locator(".message-body p")).to_contain_text("w0 w1 w2", timeout=20_000)
    expect(final.locator(".message-body")).to_contain_text("w59")
    assert len(partial) < len(final.locator(".message-body").inner_text())
    expect(page.locator("#stop")).to_be_hidden()
    screenshot("complete")

    page.reload()
    expect(page.locator(USER)).to_have_count(1)
    expect(page.locator(USER).first).to_contain_text("Tell me something long")
    expect(page.locator(ASSISTANT)).to_have_count(2)  # the greeting and the reply
    expect(page.get_by_text("Hi, I talk slowly.")).to_have_count(1)  # in its bubble, nowhere else
    expect(page.locator(f"{ASSISTANT}[data-status=complete]").last.locator(".message-body p")).to_contain_text("w59")

    user = get_user_model().objects.get(username="first")
    assert user.is_superuser and user.is_staff


def test_echo_reply_renders_markdown_list_and_highlighted_code(page, site, make_persona, screenshot):
    persona = make_persona("fake-echo", name="Echo", slug="echo", greeting="I repeat things.")

    _sign_up(page, site, "reader")
    _open_chat(page, persona)
    _send(page, "Show me a list")

    final = page.locator(f"{ASSISTANT}[data-status=complete]").last
    expect(final.locator(".message-body ul li")).to_have_count(3, timeout=20_000)
    expect(final.locator(".message-body ul li").first).to_contain_text("a bullet with inline code")
    code = final.locator(".message-body pre")
    expect(code).to_contain_text("def greet(name: str) -> str:")
    # Pygments marks tokens with classes, e.g. <span class="k">def</span>.
    assert code.locator("span[class]").count() > 3
    expect(final.locator(".message-body strong").first).to_have_text("Show me a list")
    screenshot("markdown")
