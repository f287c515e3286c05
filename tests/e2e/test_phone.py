"""The site on a phone (390 × 844, Chromium): no sideways scrolling, a header whose controls never overlap, a drawer.

The reply holds what used to push the page sideways (2,021 px of content in
a 390 px view): a 300-character word, a long URL, long inline code and a
wide code block. Each must wrap or scroll inside its own box.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from conversations import services
from conversations.models import Conversation, Message
from tests.e2e.pages import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
WORD = "Pneumono" + "x" * 292
URL = "https://example.com/" + "/".join(f"segment-{i}" for i in range(30)) + "?query=" + "q" * 80
WIDE_CODE = "print(" + ", ".join(f"'column number {i}'" for i in range(40)) + ")"
REPLY = f"""A word: {WORD}

A link: {URL}

Inline code: `{"very_long_identifier_" * 12}`

```python
{WIDE_CODE}
```

| {" | ".join(f"heading {i}" for i in range(12))} |
|{"---|" * 12}
| {" | ".join(f"cell {i}" for i in range(12))} |
"""
HEADER_CONTROLS = {
    "menu": ".sidebar-toggle-button",
    "persona": ".chat-title",
    "title": ".conversation-heading",
    "archive": ".conversation-actions form button",
    "delete": ".conversation-actions a.danger",
    "export": ".export-menu summary",
}


@pytest.fixture
def phone(browser, browser_loop, site, monkeypatch):
    """A page in a phone-sized browser context (touch, 390 × 844)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with browser_loop.running():
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def screenshot(phone, request):
    """Return `take(name)`: save the phone's page when CHAT_E2E_SCREENSHOTS names a folder (conftest's, for `phone`)."""
    folder = os.environ.get("CHAT_E2E_SCREENSHOTS")

    def take(name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            phone.screenshot(path=str(Path(folder) / f"{request.node.name}-{name}.png"), full_page=True)

    return take


def _log_in(page: Page, site, user) -> None:
    sign_in(page.context, site, user)


def _wide_chat(owner, persona) -> Conversation:
    conversation = services.conversation_create(owner=owner, persona=persona)
    sent = services.message_send(conversation=conversation, text=f"Please quote {WORD} and {URL}")
    services.reply_finish(message=sent.assistant_message, content=REPLY, status=Message.Status.COMPLETE)
    Conversation.objects.filter(pk=conversation.pk).update(title="A very wide reply, on a phone")
    return conversation


DRAWER_OPEN = """() => {
    const sidebar = document.getElementById('sidebar');
    const rect = sidebar.getBoundingClientRect();
    return getComputedStyle(sidebar).visibility === 'visible' && rect.left >= 0 && rect.right > 100;
}"""
DRAWER_CLOSED = """() => getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden'
    && document.getElementById('sidebar').getBoundingClientRect().right <= 0"""


def test_a_wide_reply_never_scrolls_the_page_sideways(phone, site, alice, persona, screenshot):
    conversation = _wide_chat(alice, persona)
    _log_in(phone, site, alice)

    phone.goto(site.url(conversation.get_absolute_url()))
    expect(phone.locator(".markdown pre")).to_be_visible()

    widths = phone.evaluate(
        """() => {
            const messages = document.getElementById('messages');
            const pre = document.querySelector('.markdown pre');
            return {
                viewport: window.innerWidth,
                document: document.documentElement.scrollWidth,
                body: document.body.scrollWidth,
                messages: [messages.scrollWidth, messages.clientWidth],
                pre: [pre.scrollWidth, pre.clientWidth],
            };
        }"""
    )
    assert widths["viewport"] == PHONE["width"]
    assert widths["document"] <= widths["viewport"], widths
    assert widths["body"] <= widths["viewport"], widths
    assert widths["messages"][0] <= widths["messages"][1], widths
    # The wide code block scrolls inside its own box.
    assert widths["pre"][0] > widths["pre"][1], widths
    for selector in (".message-body", "article.message"):
        overflowing = phone.evaluate(
            """selector => [...document.querySelectorAll(selector)].filter(
                (el) => el.getBoundingClientRect().right > window.innerWidth + 0.5).length""",
            selector,
        )
        assert overflowing == 0, selector
    screenshot("wide-reply")


def test_the_header_shows_the_title_and_its_controls_never_overlap(phone, site, alice, persona, screenshot):
    conversation = _wide_chat(alice, persona)
    _log_in(phone, site, alice)

    phone.goto(site.url(conversation.get_absolute_url()))

    boxes = {name: phone.locator(selector).first.bounding_box() for name, selector in HEADER_CONTROLS.items()}
    for name, box in boxes.items():
        assert box is not None and box["width"] > 0, f"{name} is not shown"
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, f"{name} leaves the screen: {box}"
    names = list(boxes)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a, b = boxes[first], boxes[second]
            apart = (
                a["x"] + a["width"] <= b["x"]
                or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"]
                or b["y"] + b["height"] <= a["y"]
            )
            assert apart, f"{first} {a} overlaps {second} {b}"
    expect(phone.locator(".conversation-heading")).to_contain_text("A very wide reply")
    assert boxes["title"]["width"] > 120
    screenshot("header")


def test_the_drawer_opens_over_a_backdrop_and_closes_by_button_backdrop_and_escape(
    phone, site, alice, persona, screenshot
):
    conversation = _wide_chat(alice, persona)
    _log_in(phone, site, alice)
    phone.goto(site.url(conversation.get_absolute_url()))
    assert phone.evaluate(DRAWER_CLOSED)
    expect(phone.locator(".sidebar-backdrop")).to_be_hidden()
    # The checkbox behind the drawer is no invisible tab stop: not rendered at all, its labels are the controls.
    assert phone.evaluate(
        "() => { const box = document.getElementById('sidebar-toggle'); box.focus(); "
        "return document.activeElement !== box && box.getClientRects().length === 0; }"
    )

    phone.locator(".sidebar-toggle-button").click()
    expect(phone.locator(".sidebar-backdrop")).to_be_visible()
    phone.wait_for_function(DRAWER_OPEN)
    expect(phone.locator(".sidebar-close")).to_be_visible()
    screenshot("drawer")
    phone.locator(".sidebar-close").click()
    expect(phone.locator(".sidebar-backdrop")).to_be_hidden()
    phone.wait_for_function(DRAWER_CLOSED)

    phone.locator(".sidebar-toggle-button").click()
    expect(phone.locator(".sidebar-backdrop")).to_be_visible()
    phone.mouse.click(PHONE["width"] - 10, PHONE["height"] // 2)  # on the backdrop, right of the drawer
    expect(phone.locator(".sidebar-backdrop")).to_be_hidden()

    phone.locator(".sidebar-toggle-button").focus()
    phone.keyboard.press("Enter")
    expect(phone.locator(".sidebar-backdrop")).to_be_visible()
    expect(phone.locator(".sidebar-toggle-button")).to_have_attribute("aria-expanded", "true")
    phone.keyboard.press("Escape")
    expect(phone.locator(".sidebar-backdrop")).to_be_hidden()

    phone.locator(".sidebar-toggle-button").click()
    phone.locator("#conversations .conversation-link").first.click()
    expect(phone.locator(".sidebar-backdrop")).to_be_hidden()


def test_pages_without_a_chat_leave_room_for_the_menu_button(phone, site, alice):
    _log_in(phone, site, alice)
    for path in ("/account/", "/data/", "/", "/no/such/page/"):
        phone.goto(site.url(path))
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
        if not phone.locator(".sidebar-toggle-button").count():
            continue  # the 404 page has no menu
        heading = phone.locator("main h1").first.bounding_box()
        menu = phone.locator(".sidebar-toggle-button").bounding_box()
        assert heading is not None and menu is not None, path
        assert heading["y"] >= menu["y"] + menu["height"] or heading["x"] >= menu["x"] + menu["width"], path
