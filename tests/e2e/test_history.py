"""The sidebar, conversation management and search in Chromium: what the htmx attributes do in a browser.

Scrolling the sidebar loads older pages; renaming swaps the entry in place;
archiving removes it with an out-of-band swap; the search box shows results
as the user types; scrolling up a long conversation loads its older messages
where they belong, without moving what the reader sees. Rows are committed (`transaction=True`) so the daphne
process sees them; the browser logs in with a session cookie.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import APIResponse, Page, Route, expect

from conversations import services
from conversations.models import Conversation, Message
from tests.conversations.history import long_conversation
from tests.e2e.pages import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ENTRIES = "#conversations .conversation-item"


def _log_in(page: Page, site, user) -> None:
    sign_in(page.context, site, user)


def test_scrolling_the_sidebar_loads_every_older_conversation_once(page, site, alice):
    now = timezone.now()
    created = Conversation.objects.bulk_create([Conversation(owner=alice, title=f"chat {i}") for i in range(120)])
    for i, conversation in enumerate(created):
        # Milliseconds apart: minutes apart, the oldest fell on yesterday when the test ran just after midnight.
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now - timedelta(milliseconds=i))
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


BUBBLES = "#messages > article"
# Scrolls the list of messages to its top; returns how far below the list's top edge the bubble `id` then is (px).
SCROLL_TO_TOP = """id => {
  const list = document.getElementById("messages");
  list.scrollTop = 0;
  return document.getElementById(id).getBoundingClientRect().top - list.getBoundingClientRect().top;
}"""
OFFSET = """id => document.getElementById(id).getBoundingClientRect().top
  - document.getElementById("messages").getBoundingClientRect().top"""


def test_scrolling_up_a_long_conversation_loads_older_messages_without_moving_the_page(page, site, alice, persona):
    conversation, messages = long_conversation(alice, persona, 119)
    _log_in(page, site, alice)
    page.goto(site.url(conversation.get_absolute_url()))
    expect(page.locator(BUBBLES)).to_have_count(50)
    expect(page.locator(f"#message-{messages[-1].public_id}")).to_be_in_viewport()  # The page opens at the end.
    for top, expected in ((messages[-50], 100), (messages[-100], 120)):
        top_id = f"message-{top.public_id}"
        before = page.evaluate(SCROLL_TO_TOP, top_id)
        expect(page.locator(BUBBLES)).to_have_count(expected)
        # The older bubbles went in above: the bubble that was at the top has not moved, and is still in view.
        assert abs(page.evaluate(OFFSET, top_id) - before) < 2
        expect(page.locator(f"#{top_id}")).to_be_in_viewport()
        assert page.evaluate("document.getElementById('messages').scrollTop") > 0
    shown = page.eval_on_selector_all(BUBBLES, "bubbles => bubbles.map(b => b.dataset.messageId)")
    assert shown == [str(m.public_id) for m in messages]
    expect(page.locator("#messages .messages-older")).to_have_count(0)


# Counts what the page does: the socket open, and each swap into #messages sent by the server.
WATCH = """
window.chatTest = { open: false, swaps: 0 };
document.addEventListener("htmx:wsOpen", () => { window.chatTest.open = true; });
document.addEventListener("htmx:oobBeforeSwap", (event) => {
  if (event.detail.target.id === "messages") window.chatTest.swaps += 1;
});
"""
# Scrolls the list so that bubble `id` is `offset` px below its top edge.
PLACE = """([id, offset]) => {
  const list = document.getElementById("messages");
  list.scrollTop += document.getElementById(id).getBoundingClientRect().top - list.getBoundingClientRect().top - offset;
}"""
BACK_IN_PLACE = """([id, offset, swaps]) => {
  const bubble = document.getElementById(id);
  const list = document.getElementById("messages");
  return window.chatTest.swaps >= swaps && bubble !== null && !document.querySelector("#messages .htmx-request")
    && Math.abs(bubble.getBoundingClientRect().top - list.getBoundingClientRect().top - offset) < 2;
}"""


def _chain(conversation, parent, count: int, start, *, current: bool = True) -> list[Message]:
    """Add `count` messages after `parent`, a second apart from `start`, alternating questions and replies."""
    rows = []
    for i in range(count):
        parent = Message.objects.create(
            conversation=conversation,
            parent=parent,
            role="user" if i % 2 == 0 else "assistant",
            content=f"after {parent.content[:20]}: {i}",
            is_current=current,
        )
        Message.objects.filter(pk=parent.pk).update(created_at=start + timedelta(seconds=i))
        rows.append(parent)
    return rows


def _reading_an_older_page(page: Page, site, alice, persona) -> tuple[str, Message, Message, Message]:
    """Open a conversation whose reply has two versions, load its older pages, and read a bubble above the reply.

    41 shared messages, a question, then two versions of its reply, each followed by 100 messages; the
    bubble read is 10 px below the list's top, on the oldest page, where the versions of the reply are.
    Returns the bubble's DOM id, the shown version, the other one and the last message after it.
    """
    conversation, shared = long_conversation(alice, persona, 40)
    start = shared[-1].created_at
    question, first = _chain(conversation, shared[-1], 2, start + timedelta(minutes=1))
    second = Message.objects.create(
        conversation=conversation, parent=question, role="assistant", content="Second version", is_current=False
    )
    Message.objects.filter(pk=second.pk).update(created_at=start + timedelta(minutes=2))
    _chain(conversation, first, 100, start + timedelta(minutes=3))
    after_second = _chain(conversation, second, 100, start + timedelta(minutes=3), current=False)
    page.add_init_script(WATCH)
    _log_in(page, site, alice)
    page.goto(site.url(conversation.get_absolute_url()))
    page.wait_for_function("() => window.chatTest.open")
    for expected in (100, 143):  # Every page: the versions of the reply are on the oldest one.
        page.eval_on_selector("#messages", "list => { list.scrollTop = 0; }")
        expect(page.locator(BUBBLES)).to_have_count(expected)
    # htmx wires up the buttons of a page it swapped in when the swap settles (20 ms later, more on a busy
    # machine): a click before that does nothing. It removes `htmx-added` from the new bubbles then.
    expect(page.locator("#messages .htmx-added")).to_have_count(0)
    reading = f"message-{shared[30].public_id}"
    page.evaluate(PLACE, [reading, 10])
    expect(page.locator(f"#message-{first.public_id} .version-index")).to_have_text("1/2")
    return reading, first, second, after_second[-1]


def _click_next_version(page: Page, message: Message) -> None:
    # Without moving the page (a click from the script, not Playwright's, which scrolls to the button).
    page.eval_on_selector(f"#message-{message.public_id} .version-next", "button => button.click()")


def _shows_the_other_version(page: Page, reading: str, first: Message, second: Message, last: Message) -> None:
    page.wait_for_function(BACK_IN_PLACE, arg=[reading, 10, 2])
    expect(page.locator(f"#message-{second.public_id} .version-index")).to_have_text("2/2")
    expect(page.locator(f"#message-{first.public_id}")).to_have_count(0)
    expect(page.locator(f"#message-{last.public_id}")).to_have_count(1)
    expect(page.locator(BUBBLES)).to_have_count(143)
    # Up the page, not following: the next frame will not take the reader to the end.
    expect(page.locator("#jump-latest")).to_be_visible()


def test_a_version_switch_on_an_older_page_keeps_the_reader_in_place(page, site, alice, persona):
    reading, first, second, last = _reading_an_older_page(page, site, alice, persona)
    _click_next_version(page, first)

    # The broadcast and the answer to the click both replace the list with the latest page (of the other
    # version's path); the pages down to the bubble being read load again, and it is where it was.
    _shows_the_other_version(page, reading, first, second, last)


def test_the_answer_to_a_version_switch_coming_while_older_pages_reload_keeps_the_reader_in_place(
    page, site, alice, persona
):
    reading, first, second, last = _reading_an_older_page(page, site, alice, persona)
    # The answer to the click is held (the server has broadcast the switch by then), and so is the second
    # older page asked for after the broadcast: the answer replaces the list while the pages reload, with
    # the view below the end of its latest page.
    answers: list[tuple[Route, APIResponse]] = []
    pages: list[Route] = []

    def hold_answer(route: Route) -> None:
        answers.append((route, route.fetch()))

    def hold_second_page(route: Route) -> None:
        pages.append(route)
        if len(pages) != 2:
            route.continue_()

    page.route(re.compile(r"/messages/[0-9a-f-]{36}/show/$"), hold_answer)
    page.route(re.compile(r"/messages/\?before="), hold_second_page)
    _click_next_version(page, first)
    expect(page.locator(BUBBLES)).to_have_count(100)  # The broadcast, then the first older page again.
    page.wait_for_function("() => document.querySelector('#messages > .messages-older.htmx-request') !== null")
    assert len(answers) == 1

    route, response = answers[0]
    route.fulfill(response=response)
    page.wait_for_function("() => window.chatTest.swaps >= 2")
    pages[1].continue_()  # The page asked for by the list the answer replaced: it belongs to no list now.
    _shows_the_other_version(page, reading, first, second, last)
