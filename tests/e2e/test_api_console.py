"""The API page and the account page in Chromium: keys made and revoked, the console streaming from the real /v1.

The page's own violations of the Content-Security-Policy are collected as in
test_csp.py, so the console's script must run without inline code.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from api.models import ApiKey
from conversations.models import Message
from tests.e2e.pages import sign_in
from tests.servers import session_cookie

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _log_in(page: Page, site, user) -> None:
    sign_in(page.context, site, user)


def test_a_console_message_streams_its_events_and_text(page, site, alice, make_persona, screenshot):
    make_persona("long:40+delay:20", slug="slow", name="Slow talker")
    cookie_name = session_cookie(alice).split("=", 1)[0]
    sent_to_v1: list[dict] = []
    page.on(
        "request",
        lambda request: sent_to_v1.append(request.headers) if "/v1/chat/completions" in request.url else None,
    )
    csp_errors: list[str] = []
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    _log_in(page, site, alice)
    page.goto(site.url("/account/api/"))

    page.select_option("#api-console-model", "slow")
    page.fill("#api-console-message", "Talk to me")
    page.click("#api-console-send")

    events = page.locator("#api-console-events")
    reply = page.locator("#api-console-reply")
    # Mid-stream: some events and some text are shown while Stop is offered.
    expect(page.locator("#api-console-stop")).to_be_visible()
    expect(events).to_contain_text('"delta":{"content":"w0 "}')
    expect(reply).to_contain_text("w0 w1")
    # Then the end: the finish reason, the usage chunk, [DONE], the whole text.
    expect(events).to_contain_text("data: [DONE]", timeout=20_000)
    expect(events).to_contain_text('"finish_reason":"stop"')
    expect(events).to_contain_text('"usage":')
    expect(events).to_contain_text(re.compile(r"X-Conversation-Id: [0-9a-f-]{36}"))
    expect(reply).to_have_text("".join(f"w{i} " for i in range(40)).strip(), use_inner_text=True)
    expect(page.locator("#api-console-status")).to_contain_text("Finished: stop.")
    screenshot("console")

    # The real endpoint, with a bearer key and no cookie; the key is short-lived and the reply is in the history.
    assert sent_to_v1 and sent_to_v1[0]["authorization"].startswith("Bearer chat-")
    assert cookie_name not in sent_to_v1[0].get("cookie", "")
    assert ApiKey.objects.get(user=alice).expires_at is not None
    assert Message.objects.get(role="assistant", parent__isnull=False).content.strip() == reply.inner_text().strip()
    assert csp_errors == []


def test_keys_are_created_once_shown_and_revoked_from_the_account_page(page, site, alice):
    csp_errors: list[str] = []
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    _log_in(page, site, alice)
    page.goto(site.url("/account/"))
    expect(page.locator("#api-keys")).to_contain_text("No keys yet.")  # The section's fragment has loaded.

    page.fill("#api-key-name", "laptop")
    page.click("#api-keys button[type=submit]")
    expect(page.locator("#api-new-key")).to_contain_text("chat-")
    key = page.locator("#api-new-key").inner_text().strip()
    row = ApiKey.objects.get(user=alice)
    assert key.startswith(row.prefix) and row.name == "laptop"

    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f"#api-key-{row.pk} button")
    expect(page.locator(f"#api-key-{row.pk}")).to_have_class("revoked")
    expect(page.locator("#api-new-key")).to_have_count(0)  # Shown once: gone after the next swap.
    row.refresh_from_db()
    assert row.is_revoked and csp_errors == []
