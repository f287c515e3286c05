"""In Chromium: math in a user's own message is MathML; Copy, Edit and the Markdown export give back the typed text."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import open_new_chat

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ASSISTANT = "article.message[data-role=assistant]"
USER = "article.message[data-role=user]"
COMPOSER = "#composer textarea[name=message]"
TYPED = (
    "Is $E=mc^2$ right? It costs $5 and $10, and \\[\\frac{a}{b}\\] is shown too; <b>not bold</b>, \\$x\\$ not math."
)


def _expect_math_in_the_bubble(page: Page) -> None:
    body = page.locator(f"{USER} .message-body").last
    expect(body.locator("math")).to_have_count(2)
    expect(body.locator("math").first).to_have_attribute("display", "inline")
    expect(body.locator(".math-display math")).to_have_attribute("display", "block")
    expect(body.locator("math").first.locator("msup")).to_have_count(1)  # c²
    expect(body.locator("b")).to_have_count(0)
    text = body.inner_text()
    assert "It costs $5 and $10, and" in text and "<b>not bold</b>, \\$x\\$ not math." in text
    assert "$E=mc^2$" not in text


def test_a_sent_formula_is_mathml_and_copy_edit_and_export_give_back_the_typed_text(
    logged_in, site, make_persona, screenshot
):
    page = logged_in
    persona = make_persona("fake-echo", slug="echo", greeting="Hi.")
    page.goto(site.url("/"))
    open_new_chat(page, persona)
    page.locator(COMPOSER).fill(TYPED)
    page.locator(COMPOSER).press("Enter")
    expect(page.locator(f"{ASSISTANT}[data-status=complete]").last).to_contain_text("You said:")

    _expect_math_in_the_bubble(page)  # as the socket brought it
    screenshot("user-math")
    page.reload()
    _expect_math_in_the_bubble(page)  # as the page shows it

    user = page.locator(USER).last
    user.locator(".action-copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == TYPED
    user.locator(".action-edit").click()
    expect(page.locator(COMPOSER)).to_have_value(TYPED)

    page.locator(".export-menu summary").click()
    with page.expect_download() as download_info:
        page.locator(".export-menu a[href$='/export/md/']").click()
    markdown = Path(download_info.value.path()).read_text(encoding="utf-8")
    assert TYPED in markdown
