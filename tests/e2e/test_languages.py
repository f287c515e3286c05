"""The three languages in Chromium: chosen from the browser's locale (its Accept-Language), then by the switch.

A visitor's pick stays in the language cookie; a user's follows them to
another browser, after signing out here and in there.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Text of each language on the pages the tests open (the switch's label; the sidebar's New chat).
LABEL = {"en": "Language", "zh-Hans": "语言", "zh-Hant": "語言"}
PASSWORD = "correct-horse-battery-42"
NEW_CHAT = {"en": "New chat", "zh-Hans": "新对话", "zh-Hant": "新對話"}


@pytest.fixture
def open_page(browser, browser_loop, site, monkeypatch):
    """Return `open_page(locale)`: a page in a fresh browser context whose browser speaks `locale`."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # as the `page` fixture: the test's ORM calls
    contexts = []

    def open_(locale: str) -> Page:
        context = browser.new_context(locale=locale, viewport={"width": 1200, "height": 800})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    with browser_loop.running():
        try:
            yield open_
        finally:
            for context in contexts:
                context.close()


def _screenshot(page: Page, name: str) -> None:
    if folder := os.environ.get("CHAT_E2E_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"languages-{name}.png"), full_page=True)


def _expect_language(page: Page, language: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", language)


def _sign_up(page: Page, site, username: str, password: str) -> None:
    # Through the form: the daphne process checks passwords with the real hashers, not the tests' fast one.
    page.goto(site.url("/accounts/signup/"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", password)
    page.fill("input[name=password2]", password)
    page.locator("form:has(input[name=password2]) [type=submit]").click()
    expect(page).to_have_url(site.url("/"))


def _sign_in(page: Page, site, username: str, password: str) -> None:
    page.goto(site.url("/accounts/login/"))
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    expect(page).to_have_url(site.url("/"))


@pytest.mark.parametrize(
    ("locale", "language"), [("zh-CN", "zh-Hans"), ("zh-TW", "zh-Hant"), ("zh-HK", "zh-Hant"), ("en-US", "en")]
)
def test_the_browsers_locale_chooses_the_language(open_page, site, alice, locale, language):
    page = open_page(locale)
    page.goto(site.url("/accounts/login/"))
    _expect_language(page, language)
    expect(page.locator("label[for=language-choice]")).to_have_text(LABEL[language])
    _screenshot(page, f"sign-in-{locale}")

    sign_in(page.context, site, alice)
    page.goto(site.url("/"))
    _expect_language(page, language)
    expect(page.locator("#new-chat")).to_contain_text(NEW_CHAT[language])
    _screenshot(page, f"new-chat-{locale}")


def test_a_visitors_pick_stays_in_the_language_cookie(open_page, site):
    page = open_page("en-US")
    page.goto(site.url("/accounts/login/"))
    _expect_language(page, "en")
    page.select_option("#language-choice", "zh-hant")
    page.click("#language-switch [type=submit]")
    expect(page).to_have_url(site.url("/accounts/login/"))
    _expect_language(page, "zh-Hant")
    assert {"name": "django_language", "value": "zh-hant"}.items() <= next(
        cookie for cookie in page.context.cookies() if cookie["name"] == "django_language"
    ).items()

    page.goto(site.url("/accounts/signup/"))  # another page, the same browser: the cookie still decides
    _expect_language(page, "zh-Hant")
    expect(page.locator("#language-choice")).to_have_value("zh-hant")


def test_a_users_pick_follows_them_to_another_browser(open_page, site):
    laptop = open_page("en-US")
    _sign_up(laptop, site, "dora", PASSWORD)
    _expect_language(laptop, "en")
    laptop.goto(site.url("/account/"))
    laptop.select_option("#language-choice", "zh-hans")
    laptop.click("#language-switch [type=submit]")
    expect(laptop).to_have_url(site.url("/account/"))
    _expect_language(laptop, "zh-Hans")
    expect(laptop.locator("#language-choice")).to_have_value("zh-hans")
    _screenshot(laptop, "account-zh-Hans")
    laptop.locator(".sidebar-footer form[action*='logout'] [type=submit]").click()
    expect(laptop).to_have_url(site.url("/accounts/login/?next=/"))
    _expect_language(laptop, "zh-Hans")  # signed out: the cookie the switch set

    phone = open_page("zh-TW")  # another browser, Traditional Chinese, never switched
    phone.goto(site.url("/accounts/login/"))
    _expect_language(phone, "zh-Hant")
    _sign_in(phone, site, "dora", PASSWORD)
    _expect_language(phone, "zh-Hans")
    expect(phone.locator("#new-chat")).to_contain_text(NEW_CHAT["zh-Hans"])

    # Back to the browser's language: the phone's zh-TW decides again.
    phone.goto(site.url("/account/"))
    phone.select_option("#language-choice", "")
    phone.click("#language-switch [type=submit]")
    _expect_language(phone, "zh-Hant")
    expect(phone.locator("#language-choice")).to_have_value("")
