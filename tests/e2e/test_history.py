"""The sidebar, conversation management and search in Chromium: what the htmx attributes do in a browser.

Scrolling the sidebar loads older pages; renaming swaps the entry in place;
archiving removes it with an out-of-band swap; the search box shows results
as the user types. Rows are committed (`transaction=True`) so the daphne
process sees them; the browser logs in with a session cookie.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from conversations import services
from conversations.models import Conversation
from tests.servers import session_cookie

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ENTRIES = "#conversations .conversation-item"


def _log_in(page: Page, site, user) -> None:
    name, value = session_cookie(user).split("=", 1)
    page.context.add_cookies([{"name": name, "value": value, "url": site.url("/")}])


def test_scrolling_the_sidebar_loads_every_older_conversation_once(page, site, alice):
    now = timezone.now()
    created = Conversation.objects.bulk_create([Conversation(owner=alice, title=f"chat {i}") for i in range(120)])
    for i, conversation in enumerate(created):
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now - timedelta(minutes=i))
    _log_in(page, site, alice)
    page.goto(site.url("/"))
    expect(page.locator(ENTRIES)).to_have_count(50)
    for expected in (100, 120):
        page.locator(ENTRIES).last.scroll_into_view_if_needed()
        expect(page.locator(ENTRIES)).to_have_count(expected)
    titles = page.locator(f"{ENTRIES} .conversation-link").all_inner_texts()
    assert titles == [f"chat {i}" for i in range(120)]
    expect(page.locator("#conversations a.more")).to_have_count(0)
    expect(page.locator("#conversations h2.conversation-group")).to_have_count(1)  # one "Today"


def test_rename_archive_and_delete_from_the_page(page, site, alice, persona):
    conversation = services.conversation_create(owner=alice, persona=persona)
    services.message_send(conversation=conversation, text="First question")
    entry = f"#conversation-{conversation.public_id}"
    _log_in(page, site, alice)
    page.goto(site.url(conversation.get_absolute_url()))

    # Rename in the sidebar: the entry turns into a form and back.
    page.hover(entry)
    page.click(f"{entry} .item-rename")
    title = page.locator(f"{entry}.rename-form input[name=title]")
    expect(title).to_have_value("First question")
    title.fill("Renamed <here>")
    title.press("Enter")
    expect(page.locator(f"{entry}.conversation-item")).to_contain_text("Renamed <here>")
    expect(page.locator(f"#conversation-{conversation.public_id}-heading")).to_have_text("Renamed <here>")

    # Archive from the header: the entry leaves the sidebar, the header offers Unarchive.
    page.click(".conversation-actions button:has-text('Archive')")
    expect(page.locator(entry)).to_have_count(0)
    expect(page.locator(".conversation-actions .badge")).to_have_text("Archived")
    page.click(".conversation-actions button:has-text('Unarchive')")
    expect(page.locator(entry)).to_have_count(1)

    # Delete: confirm, then a new chat.
    page.click(".conversation-actions a:has-text('Delete')")
    page.click("#confirm-delete")
    expect(page).to_have_url(site.url("/"))
    expect(page.locator(".flash")).to_contain_text("Deleted “Renamed <here>”.")
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


def test_search_box_shows_results_while_typing_and_opens_the_message(page, site, alice, persona):
    conversation = services.conversation_create(owner=alice, persona=persona)
    message = services.message_send(conversation=conversation, text="Where do penguins live?").user_message
    _log_in(page, site, alice)
    page.goto(site.url("/"))
    page.fill("#search input[name=q]", "pengu")
    expect(page.locator("#search-results .search-hit-snippet mark")).to_have_text("pengu")
    expect(page).to_have_url(re.compile(r"/search/\?q=pengu$"))
    page.click("#search-results .search-hit-link")
    url = f"{conversation.get_absolute_url()}?around={message.public_id}#message-{message.public_id}"
    expect(page).to_have_url(site.url(url))
    expect(page.locator(f"#message-{message.public_id}")).to_be_visible()
