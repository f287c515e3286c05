"""How the site looks in Chromium: both themes readable (WCAG AA contrast), the theme switch, math, GFM extras.

Replies are made the way the site makes them (`services.reply_finish`
renders and stores them), then the pages are loaded in a real browser. The
contrast check (tests/e2e/contrast.py) measures every shown piece of text on
the main pages, light and dark.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.models import Preference
from conversations import services
from conversations.models import Conversation, Message
from tests.e2e.contrast import low_contrast, text_count
from tests.e2e.pages import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPLY = """## A reply with everything

Here is **bold**, *emphasis*, `inline code`, a [link](https://example.com/docs) and ~~struck~~ text.

```python
def greet(name: str) -> str:
    # Say hello
    return f"Hello, {name}!"  # 42
```

| Item | Price |
|:-----|------:|
| Tea  | 3.50 |

- [x] written
- [ ] reviewed

> A quote, in muted colours.

Euler: $e^{i\\pi} + 1 = 0$, and costs $5 and $10.

$$\\int_0^1 x\\,dx = \\frac{1}{2}$$

\\[
x = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}
\\]
"""
PAGES = {
    "chat": None,  # the conversation, filled in by the test
    "account": reverse("account"),
    "data": reverse("transfer:data"),
    "search": reverse("conversations:search") + "?q=reply",
    "new chat": reverse("conversations:conversation-new"),
    "not found": "/no/such/page/",
}


def _log_in(page: Page, site, user) -> None:
    sign_in(page.context, site, user)


def _chat_with_reply(owner, persona, reply: str = REPLY) -> Conversation:
    conversation = services.conversation_create(owner=owner, persona=persona)
    sent = services.message_send(conversation=conversation, text="Show me everything, with `code` and math.")
    services.reply_finish(message=sent.assistant_message, content=reply, status=Message.Status.COMPLETE)
    Conversation.objects.filter(pk=conversation.pk).update(title="Everything at once")
    return conversation


def _theme_colours(page: Page) -> dict:
    return page.evaluate(
        """() => {
            const pre = document.querySelector('.markdown pre.highlight');
            const keyword = pre && pre.querySelector('.k');
            return {
                theme: document.documentElement.dataset.theme,
                body: getComputedStyle(document.body).backgroundColor,
                code: pre && getComputedStyle(pre).backgroundColor,
                keyword: keyword && getComputedStyle(keyword).color,
            };
        }"""
    )


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_main_page_has_aa_contrast(page, site, alice, persona, theme, screenshot):
    conversation = _chat_with_reply(alice, persona)
    Preference.objects.create(user=alice, theme=theme)
    # The other scheme in the browser: the saved theme, not the system's, must decide.
    page.emulate_media(color_scheme="dark" if theme == "light" else "light")
    _log_in(page, site, alice)
    problems = []
    for name, url in {**PAGES, "chat": conversation.get_absolute_url()}.items():
        page.goto(site.url(url))
        assert page.evaluate("document.documentElement.dataset.theme") == theme, name
        if name == "chat":
            expect(page.locator(".markdown pre.highlight")).to_be_visible()
            expect(page.locator(".markdown math").first).to_be_visible()
        assert text_count(page) > (3 if name == "not found" else 10), f"{name}: almost no text was checked"
        problems += [f"{name}: {line}" for line in low_contrast(page)]
        screenshot(f"{name}-{theme}".replace(" ", "-"))
    page.context.clear_cookies()
    page.goto(site.url(reverse("account_login")))
    page.locator(f".theme-switch button[value={theme}]").click()
    expect(page.locator("html")).to_have_attribute("data-theme", theme)
    problems += [f"sign-in: {line}" for line in low_contrast(page)]
    screenshot(f"sign-in-{theme}")
    assert not problems, "\n".join(problems)


def test_system_theme_follows_the_browser_and_code_turns_dark(page, site, alice, persona):
    conversation = _chat_with_reply(alice, persona)
    _log_in(page, site, alice)

    page.emulate_media(color_scheme="light")
    page.goto(site.url(conversation.get_absolute_url()))
    light = _theme_colours(page)
    page.emulate_media(color_scheme="dark")
    dark = _theme_colours(page)

    assert light["theme"] == dark["theme"] == "system"
    assert light["body"] != dark["body"] and light["code"] != dark["code"] and light["keyword"] != dark["keyword"]
    assert dark["code"] == "rgb(22, 27, 34)"  # github-dark on the dark theme's --code-bg, not Pygments' light grey
    assert low_contrast(page) == []


def test_the_sidebar_switch_applies_at_once_keeps_the_draft_and_is_saved(page, site, alice, persona):
    conversation = _chat_with_reply(alice, persona)
    page.emulate_media(color_scheme="light")
    _log_in(page, site, alice)
    page.goto(site.url(conversation.get_absolute_url()))
    composer = page.locator("#composer textarea[name=message]")
    composer.fill("a draft that must survive")
    before = _theme_colours(page)

    with page.expect_response(lambda response: response.url.endswith(reverse("theme-set"))):
        page.locator("#sidebar .theme-switch button[value=dark]").click()

    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.locator("#sidebar .theme-switch button[value=dark]")).to_have_attribute("aria-pressed", "true")
    assert composer.input_value() == "a draft that must survive"
    assert _theme_colours(page)["code"] != before["code"]
    assert Preference.objects.get(user=alice).theme == "dark"
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.goto(site.url(reverse("account")))
    expect(page.locator("#account-theme input[value=dark]")).to_be_checked()

    with page.expect_response(lambda response: response.url.endswith(reverse("theme-set"))):
        page.locator("#account-theme input[value=light]").check()

    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")


def test_a_visitors_theme_is_kept_in_a_cookie_without_javascript(browser, browser_loop, site):
    with browser_loop.running():
        context = browser.new_context(java_script_enabled=False, color_scheme="light")
        try:
            page = context.new_page()
            page.goto(site.url(reverse("account_login")))
            page.locator(".theme-switch button[value=dark]").click()
            page.wait_for_load_state()
            expect(page.locator("html")).to_have_attribute("data-theme", "dark")
            assert any(cookie["name"] == "chat_theme" and cookie["value"] == "dark" for cookie in context.cookies())
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 17, 21)"
        finally:
            context.close()


def test_math_is_rendered_in_the_bubble_and_the_export_keeps_what_the_model_wrote(page, site, alice, persona):
    conversation = _chat_with_reply(alice, persona)
    _log_in(page, site, alice)
    page.goto(site.url(conversation.get_absolute_url()))
    body = page.locator("article.message[data-role=assistant]").last.locator(".message-body")

    formulas = body.locator("math")
    expect(formulas).to_have_count(3)
    heights = [box["height"] for box in (formulas.nth(i).bounding_box() for i in range(3))]
    assert all(height > 10 for height in heights)
    assert body.locator("math[display=block]").count() == 2
    text = body.inner_text()
    assert "$$" not in text and "\\frac" not in text and "x,dx" not in text
    assert "costs $5 and $10" in text

    export = page.request.get(site.url(reverse("transfer:conversation-export", args=[conversation.public_id, "md"])))
    assert export.ok
    assert "$$\\int_0^1 x\\,dx = \\frac{1}{2}$$" in export.text()
    assert "\\[\nx = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}\n\\]" in export.text()


def test_a_formula_that_does_not_parse_is_shown_as_code(page, site, alice, persona):
    conversation = _chat_with_reply(alice, persona, reply="Broken: $\\frac{$ and fine: $x^2$")
    _log_in(page, site, alice)
    page.goto(site.url(conversation.get_absolute_url()))
    body = page.locator("article.message[data-role=assistant]").last.locator(".message-body")

    expect(body.locator("code")).to_have_text("$\\frac{$")
    expect(body.locator("math")).to_have_count(1)


def test_task_lists_table_alignment_and_links_in_a_new_tab(page, site, alice, persona):
    conversation = _chat_with_reply(alice, persona)
    _log_in(page, site, alice)
    page.goto(site.url(conversation.get_absolute_url()))
    body = page.locator("article.message[data-role=assistant]").last.locator(".message-body")

    boxes = body.locator("li input[type=checkbox]")
    expect(boxes).to_have_count(2)
    expect(boxes.first).to_be_checked()
    expect(boxes.first).to_be_disabled()
    expect(boxes.last).not_to_be_checked()
    price = body.locator("td").last
    assert price.evaluate("el => getComputedStyle(el).textAlign") == "right"
    assert body.locator("th").first.evaluate("el => getComputedStyle(el).textAlign") == "left"
    link = body.locator("a[href='https://example.com/docs']")
    expect(link).to_have_attribute("target", "_blank")
    assert {"noopener", "noreferrer"} <= set((link.get_attribute("rel") or "").split())


def test_search_snippets_show_a_replys_words_not_its_markup(page, site, alice, persona):
    _chat_with_reply(alice, persona)
    _log_in(page, site, alice)

    page.goto(site.url(reverse("conversations:search") + "?q=emphasis"))

    snippet = page.locator(".search-hit-snippet").first
    expect(snippet).to_contain_text("Here is bold, emphasis, inline code, a link and struck text.")
    text = snippet.inner_text()
    assert "**" not in text and "`" not in text and "](" not in text and "##" not in text


def test_the_404_page_leads_back_and_no_page_asks_for_a_missing_favicon(page, site, alice):
    failed = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    _log_in(page, site, alice)

    page.goto(site.url(reverse("account")))
    page.wait_for_load_state("networkidle")
    assert re.search(
        r"/static/favicon(\.[0-9a-f]+)?\.svg$", page.evaluate("document.querySelector('link[rel=icon]').href")
    )
    assert failed == []

    response = page.goto(site.url("/no/such/page/"))
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    page.locator(".error-actions a.button").click()
    expect(page).to_have_url(site.url(reverse("conversations:conversation-new")))


def test_without_a_mail_server_forgot_password_says_to_ask_an_admin(page, site):
    page.goto(site.url(reverse("account_login")))

    page.locator(f"a[href='{reverse('account_reset_password')}']").first.click()

    expect(page.locator("main")).to_contain_text("Ask an admin of this site to set a new password for you")
    expect(page.locator("main")).not_to_contain_text("We have sent you an email")
    expect(page.locator("input[name=email]")).to_have_count(0)
