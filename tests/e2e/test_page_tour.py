"""A tour of the main pages in Chromium: each language × theme × viewport, with a screenshot of each page.

For each combination, one browser context (its Accept-Language from the
context's locale, its viewport a desktop's or a phone's) opens the sign-in
page signed out (the theme from the visitor's cookie), then, signed in as a
user with a conversation (the theme from the user's saved preference), the
new-chat persona picker, that conversation (a reply holding a code block, a
table and math), the account, data, usage and API pages. Each page must be in
the language and theme asked for, with its own heading in that language (the
catalog's text, through `gettext`), no sideways scrolling and no console
errors. With CHAT_E2E_SCREENSHOTS set, each page is saved there as
``<page>-<lang>-<theme>-<viewport>.png`` (conftest's `screenshot`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.urls import reverse
from django.utils import translation
from playwright.sync_api import Page, expect

from accounts.models import Preference
from accounts.theme import THEME_COOKIE
from conversations import services
from conversations.models import Conversation, Message
from tests.e2e.pages import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Browser locale → the language the site must answer in (<html lang>; Django's code for `translation.override`).
LANGUAGES = {"en-US": "en", "zh-CN": "zh-Hans", "zh-TW": "zh-Hant"}
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1440, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
THEMES = ("light", "dark")
REPLY = """Here is the function, a table and the formula.

```python
def area(radius: float) -> float:
    return 3.14159 * radius ** 2
```

| Radius | Area |
|-------:|-----:|
| 1 | 3.14 |
| 2 | 12.57 |

The area is $A = \\pi r^2$, and in full:

$$\\int_0^r 2\\pi t\\,dt = \\pi r^2$$
"""


@dataclass(frozen=True)
class Combination:
    locale: str
    theme: str
    viewport: str

    @property
    def language(self) -> str:
        return LANGUAGES[self.locale]

    def suffix(self) -> str:
        return f"{self.language}-{self.theme}-{self.viewport}"


COMBINATIONS = [
    pytest.param(Combination(locale, theme, viewport), id=Combination(locale, theme, viewport).suffix())
    for locale in LANGUAGES
    for theme in THEMES
    for viewport in VIEWPORTS
]


@pytest.fixture(params=COMBINATIONS)
def combination(request) -> Combination:
    return request.param


@pytest.fixture
def console_errors() -> list[str]:
    """The console errors and uncaught exceptions of the test's page, as they come."""
    return []


@pytest.fixture
def page(browser, browser_loop, site, monkeypatch, combination, console_errors):
    """conftest's `page`, in a context speaking the combination's locale at its viewport; errors in `console_errors`."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # as conftest's `page`: the test's ORM calls
    with browser_loop.running():
        context = browser.new_context(locale=combination.locale, **VIEWPORTS[combination.viewport])
        context.set_default_timeout(15_000)
        try:
            page = context.new_page()
            page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: console_errors.append(str(error)))
            yield page
        finally:
            context.close()


def _text(language: str, message: str) -> str:
    with translation.override(language.lower()):
        return translation.gettext(message)


def _conversation(owner, persona) -> Conversation:
    conversation = services.conversation_create(owner=owner, persona=persona)
    sent = services.message_send(conversation=conversation, text="Show me the area of a circle, in code and math.")
    services.reply_finish(message=sent.assistant_message, content=REPLY, status=Message.Status.COMPLETE)
    Conversation.objects.filter(pk=conversation.pk).update(title="Circle area")
    return conversation


def _check(
    page: Page, combination: Combination, name: str, screenshot, console_errors, *, scrolls: bool = False
) -> None:
    """Assert what every page must be (language, theme, size, console), then save its screenshot.

    A page of the signed-in layout fits the view, scrolling inside its own
    boxes (the sidebar, the messages, the panel); `scrolls` for one whose
    document may be taller (the sign-in page).
    """
    html = page.locator("html")
    expect(html).to_have_attribute("lang", combination.language)
    expect(html).to_have_attribute("data-theme", combination.theme)
    size = page.evaluate(
        "({width: document.scrollingElement.scrollWidth, height: document.scrollingElement.scrollHeight,"
        " innerWidth, innerHeight})"
    )
    assert size["width"] <= size["innerWidth"], (
        f"{name}: {size['width']} px of content in a {size['innerWidth']} px view"
    )
    if not scrolls:
        assert size["height"] <= size["innerHeight"], f"{name}: the document scrolls to {size['height']} px"
    assert console_errors == [], f"{name}: console errors"
    _screenshot_whole(page, screenshot, f"{name}-{combination.suffix()}")


def _screenshot_whole(page: Page, screenshot, name: str) -> None:
    """Take `name` with the view made tall enough that the page's own scroll boxes show all they hold.

    A full-page screenshot grows the document, not a box that scrolls inside
    a layout of the view's height; the view is back to its size after.
    """
    viewport = page.viewport_size
    assert viewport is not None
    hidden = page.evaluate(
        """() => Math.max(0, ...[...document.querySelectorAll('*')]
            .filter((el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowY) && el.getClientRects().length)
            .map((el) => el.scrollHeight - el.clientHeight))"""
    )
    page.set_viewport_size({"width": viewport["width"], "height": viewport["height"] + hidden})
    try:
        screenshot(name, prefixed=False)
    finally:
        page.set_viewport_size(viewport)


def test_main_pages(page, site, alice, persona, combination, screenshot, console_errors):
    language = combination.language
    conversation = _conversation(alice, persona)
    Preference.objects.create(user=alice, theme=combination.theme)
    # The other scheme in the browser: the chosen theme, not the system's, must decide.
    page.emulate_media(color_scheme="dark" if combination.theme == "light" else "light")

    # Signed out: a visitor's theme is their cookie's.
    page.context.add_cookies([{"name": THEME_COOKIE, "value": combination.theme, "url": site.url("/")}])
    page.goto(site.url(reverse("account_login")))
    expect(page.get_by_role("heading", level=1)).to_have_text(_text(language, "Sign In"))
    _check(page, combination, "sign-in", screenshot, console_errors, scrolls=True)

    page.context.clear_cookies()  # Signed in, without the visitor's cookie: the theme is the user's saved one.
    sign_in(page.context, site, alice)
    new_chat = _text(language, "New chat")
    headings = {
        "new-chat": (reverse("conversations:conversation-new"), "Who do you want to talk to?"),
        "account": (reverse("account"), "Account"),
        "data": (reverse("transfer:data"), "Your data"),
        "usage": (reverse("usage:usage"), "Your usage"),
        "api": (reverse("api:page"), "Your keys"),  # its <h1> is "API" in every language
    }
    for page_name, (url, heading) in headings.items():
        page.goto(site.url(url))
        expect(page.get_by_role("heading", name=_text(language, heading), exact=True)).to_be_visible()
        expect(page.locator("#new-chat")).to_contain_text(new_chat)  # the sidebar too
        _check(page, combination, page_name, screenshot, console_errors)

    page.goto(site.url(conversation.get_absolute_url()))
    reply = page.locator(".message-assistant .markdown").last
    expect(reply.locator("pre")).to_be_visible()
    expect(reply.locator("table")).to_be_visible()
    expect(reply.locator("math").first).to_be_visible()
    expect(page.locator("#send")).to_have_text(_text(language, "Send"))
    expect(page.locator("#new-chat")).to_contain_text(new_chat)
    _check(page, combination, "chat", screenshot, console_errors)
