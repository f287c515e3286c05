"""In the browser: regenerate a reply and step through its versions, edit the last question, copy text."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import open_new_chat

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ASSISTANT = "article.message[data-role=assistant]"
COMPOSER = "#composer textarea[name=message]"


def open_chat(page: Page, site, persona) -> None:
    page.goto(site.url("/"))
    open_new_chat(page, persona)


def send(page: Page, text: str) -> None:
    page.locator(COMPOSER).fill(text)
    page.locator(COMPOSER).press("Enter")


def test_regenerate_then_step_back_to_the_first_version(logged_in, site, make_persona, screenshot):
    page = logged_in
    persona = make_persona("fake-echo", slug="echo", greeting="Hi.")
    open_chat(page, site, persona)
    send(page, "first question")
    last = page.locator(f"{ASSISTANT}[data-status=complete]").last
    expect(last).to_contain_text("You said: first question")

    last.locator(".action-regenerate").click()
    expect(page.locator(f"{ASSISTANT}[data-status=complete]").last.locator(".version-index")).to_have_text("2/2")
    screenshot("regenerated")
    page.locator(f"{ASSISTANT}").last.locator(".version-previous").click()
    expect(page.locator(f"{ASSISTANT}").last.locator(".version-index")).to_have_text("1/2")
    page.reload()
    expect(page.locator(f"{ASSISTANT}").last.locator(".version-index")).to_have_text("1/2")


def test_edit_the_last_question_and_copy_a_code_block(logged_in, site, make_persona):
    page = logged_in
    persona = make_persona("fake-echo", slug="echo", greeting="Hi.")
    open_chat(page, site, persona)
    send(page, "typo questoin")
    expect(page.locator(f"{ASSISTANT}[data-status=complete]").last).to_contain_text("typo questoin")

    page.locator("article.message[data-role=user]").last.locator(".action-edit").click()
    expect(page.locator(COMPOSER)).to_have_value("typo questoin")
    page.locator(COMPOSER).fill("typo question")
    page.locator(COMPOSER).press("Enter")
    expect(page.locator("article.message[data-role=user]")).to_have_count(1)
    expect(page.locator("article.message[data-role=user]").last).to_contain_text("typo question")
    expect(page.locator("article.message[data-role=user]").last.locator(".version-index")).to_have_text("2/2")
    final = page.locator(f"{ASSISTANT}[data-status=complete]").last
    expect(final).to_contain_text("You said: typo question")

    final.locator("pre").hover()
    final.locator("pre .code-copy").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("def greet(name: str) -> str:")
    expect(page.locator("#context-budget")).to_contain_text("messages in context, about")


def test_export_one_conversation_and_read_the_downloaded_json(logged_in, site, make_persona):
    import json

    page = logged_in
    persona = make_persona("long:3", slug="short", greeting="Hi.")
    open_chat(page, site, persona)
    send(page, "export me")
    expect(page.locator(f"{ASSISTANT}[data-status=complete]").last).to_contain_text("w0 w1 w2")

    page.locator(".export-menu summary").click()
    with page.expect_download() as download_info:
        page.locator(".export-menu a[href$='/export/json/']").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".json")
    data = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    assert data["format"] == "chatsite.conversations" and data["version"] == 1
    (conversation,) = data["conversations"]
    assert conversation["persona"]["slug"] == "short"
    assert [(m["role"], m["content"]) for m in conversation["messages"]] == [
        ("assistant", "Hi."),
        ("user", "export me"),
        ("assistant", "w0 w1 w2 "),
    ]
    assert conversation["messages"][-1]["completion_tokens"] == 3
