"""In the browser: pin a chat to the top of the sidebar, and put another in a new folder from the menu."""

import pytest
from playwright.sync_api import Page, expect

from conversations import organizing, services
from tests.e2e.pages import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chats(alice, persona):
    made = []
    for title in ("Alpha", "Beta", "Gamma"):
        conversation = services.conversation_create(owner=alice, persona=persona)
        services.conversation_rename(conversation=conversation, title=title)
        made.append(conversation)
    return made


def test_pin_a_chat_and_file_another_in_a_folder(chats, page: Page, site, alice, screenshot):
    alpha, beta, _ = chats
    sign_in(page.context, site, alice)

    page.goto(site.url(alpha.get_absolute_url()))
    page.click("#pin-toggle")
    pinned = page.locator("#pinned-conversations .conversation-item")
    expect(pinned).to_have_count(1)
    expect(pinned).to_contain_text("Alpha")
    expect(page.locator("#pin-toggle")).to_have_text("Unpin")

    page.goto(site.url(beta.get_absolute_url()))
    page.click("#folder-link")
    page.fill("#new-folder", "Research")
    page.click("#folder-save")
    folder = page.locator(".folder-group", has_text="Research")
    expect(folder.locator(".conversation-item")).to_contain_text("Beta")
    dated = page.locator("#conversations > .conversation-item")
    expect(dated).to_have_count(1)
    expect(dated).to_contain_text("Gamma")
    screenshot("sidebar")

    page.reload()
    expect(page.locator("#pinned-conversations")).to_contain_text("Alpha")
    folder.locator("summary").click()  # folders fold
    expect(folder.locator(".conversation-item")).to_be_hidden()


def test_drag_a_chat_onto_a_folder(chats, page: Page, site, alice):
    alpha, _, gamma = chats
    organizing.conversation_move(conversation=alpha, folder=organizing.folder_get_or_create(owner=alice, name="Trips"))
    sign_in(page.context, site, alice)
    page.goto(site.url("/"))
    folder = page.locator(".folder-group", has_text="Trips")
    expect(folder.locator(".conversation-item")).to_have_count(1)

    page.locator(f"#conversation-{gamma.public_id}").drag_to(folder.locator("summary"))

    expect(folder.locator(".conversation-item")).to_have_count(2)
    expect(folder).to_contain_text("Gamma")


def test_rename_a_folder_then_delete_it_and_keep_its_chats(chats, page: Page, site, alice):
    alpha, beta, _ = chats
    trips = organizing.folder_get_or_create(owner=alice, name="Trips")
    for conversation in (alpha, beta):
        organizing.conversation_move(conversation=conversation, folder=trips)
    sign_in(page.context, site, alice)
    page.goto(site.url("/"))
    folder = page.locator(f"#folder-{trips.public_id}")
    expect(folder.locator(".conversation-item")).to_have_count(2)

    folder.locator(".folder-rename").click()
    folder.locator("input[name=name]").fill("Holidays")
    folder.locator("input[name=name]").press("Enter")

    expect(folder.locator("summary")).to_have_text("Holidays")
    expect(folder.locator(".conversation-item")).to_have_count(2)
    page.reload()
    expect(folder.locator("summary")).to_have_text("Holidays")

    folder.locator(".folder-delete").click()

    expect(page.locator(".folder-group")).to_have_count(0)
    expect(page.locator("#conversations > .conversation-item")).to_have_count(3)
    expect(page.locator("#conversations")).to_contain_text("Alpha")
