"""A conversation's entry in the sidebar and on the archive page (conversations/entries.py).

Each payload of the XSS corpus (tests/fixtures/xss/payloads.txt) becomes a
conversation's title, in the sidebar's dated list, in its pinned and filed
lists and on the archive page. The entries are parsed with the standard
library's HTML parser: their elements and attributes must be the entry's own
and the title must come back exactly as the payload. Each link must be what
Django's `reverse` gives, under a script prefix too (entries fill in one
reversal per view, `entries._Urls`).
"""

import re
import uuid

import pytest
from django.urls import reverse, set_script_prefix
from django.utils import translation

from conversations import entries
from conversations.models import Conversation
from conversations.sidebar import Row
from tests.conversations.test_bubbles import _texts, own_elements
from tests.conversations.test_rendering import CORPUS, _corpus_path, _parse

# The entries' own elements and attributes; anything else came from a payload.
ENTRY_ATTRIBUTES = {
    "h2": {"class"},
    "div": {"id", "class", "draggable", "data-folder-url"},
    "a": {"href", "class", "hx-get", "hx-target", "hx-swap", "title", "aria-label"},
    "span": {"id"},
    "form": {"method", "action", "hx-post", "hx-swap", "class"},
    "input": {"type", "name", "value"},
    "button": {"type", "class"},
}


@pytest.mark.parametrize("payload", CORPUS)
def test_a_payload_in_a_title_stays_text_in_every_list(payload):
    assert payload is not None, f"XSS corpus not found at {_corpus_path()}; set CHAT_FIXTURES_DIR"
    listed = Conversation(public_id=uuid.uuid4(), title=payload)
    archived = Conversation(public_id=uuid.uuid4(), title=payload, archived=True)
    shown = [
        (entries.render_rows([Row(listed, "Today")], current_id=None), listed),
        (entries.render_entries([listed], current_id=listed.public_id), listed),
        (entries.render_rows([Row(archived, "")], current_id=None, csrf_token="token"), archived),
    ]
    for markup, conversation in shown:
        elements = own_elements(markup, ENTRY_ATTRIBUTES)
        assert [e.get("id") for e in elements if e.tag == "span"] == [f"conversation-{conversation.public_id}-title"]
        assert _texts(markup, "conversation-link") == [payload]


def test_an_entry_links_where_reverse_does_under_a_script_prefix_too():
    listed = Conversation(public_id=uuid.uuid4(), title="Listed")
    archived = Conversation(public_id=uuid.uuid4(), title="Archived", archived=True)
    for prefix in ("/", "/chat/"):
        set_script_prefix(prefix)
        try:
            markup = entries.render_rows([Row(listed, ""), Row(archived, "")], current_id=None, csrf_token="t")
            expected = {
                "listed": [
                    reverse("conversations:conversation-folder", args=[listed.public_id]),
                    reverse("conversations:conversation-detail", args=[listed.public_id]),
                    reverse("conversations:conversation-rename", args=[listed.public_id]),
                ],
                "archived": [
                    reverse("conversations:conversation-detail", args=[archived.public_id]),
                    reverse("conversations:conversation-unarchive", args=[archived.public_id]),
                    reverse("conversations:conversation-archived-list"),
                    reverse("conversations:conversation-delete", args=[archived.public_id]),
                ],
            }
        finally:
            set_script_prefix("/")
        assert expected["listed"][0].startswith(prefix)
        links = [
            value
            for element in _parse(markup).elements
            for name, value in element.attrs
            if name in {"href", "action", "data-folder-url", "value"} and value != "t"
        ]
        assert links == expected["listed"] + expected["archived"]
        hx = [
            e.get("hx-get") or e.get("hx-post") for e in _parse(markup).elements if e.get("hx-get") or e.get("hx-post")
        ]
        assert hx == [
            expected["listed"][2] + "?place=sidebar",
            expected["archived"][1],
            expected["archived"][3],
        ]


def test_only_the_open_conversation_is_current_and_an_untitled_one_is_a_new_chat():
    first = Conversation(public_id=uuid.uuid4(), title="")
    second = Conversation(public_id=uuid.uuid4(), title="Second")
    elements = _parse(entries.render_entries([first, second], current_id=second.public_id)).elements
    assert [e.get("class") for e in elements if e.tag == "div"] == ["conversation-item", "conversation-item current"]
    assert [e.get("id") for e in elements if e.tag == "div"] == [
        f"conversation-{first.public_id}",
        f"conversation-{second.public_id}",
    ]
    markup = entries.render_entries([first, second], current_id=None)
    assert _texts(markup, "conversation-link") == ["New chat", "Second"]
    assert "current" not in markup


def test_an_archived_entry_posts_with_the_csrf_token_only_when_there_is_one():
    archived = Conversation(public_id=uuid.uuid4(), title="Old", archived=True)
    with_token = _parse(entries.render_entries([archived], current_id=None, csrf_token='a"b')).elements
    assert [(e.get("name"), e.get("value")) for e in with_token if e.tag == "input"] == [
        ("csrfmiddlewaretoken", 'a"b'),
        ("next", reverse("conversations:conversation-archived-list")),
    ]
    for missing in ("", "NOTPROVIDED"):
        inputs = [
            e
            for e in _parse(entries.render_entries([archived], current_id=None, csrf_token=missing)).elements
            if e.tag == "input"
        ]
        assert [e.get("name") for e in inputs] == ["next"]


def test_a_date_header_leads_its_group_only():
    rows = [
        Row(Conversation(public_id=uuid.uuid4(), title=str(i)), header)
        for i, header in enumerate(["Today", "", "<Yesterday>"])
    ]
    markup = entries.render_rows(rows, current_id=None)
    assert _texts(markup, "conversation-group") == ["Today", "<Yesterday>"]
    assert (
        markup.index("Today")
        < markup.index(">0<")
        < markup.index(">1<")
        < markup.index("Yesterday")
        < markup.index(">2<")
    )


def test_an_entry_speaks_the_language_of_the_page():
    listed = Conversation(public_id=uuid.uuid4(), title="")
    archived = Conversation(public_id=uuid.uuid4(), title="Old", archived=True)
    for language, new_chat, rename, unarchive, delete in (
        ("en", "New chat", "Rename", "Unarchive", "Delete"),
        ("zh-hans", "新对话", "重命名", "取消归档", "删除"),
        ("zh-hant", "新對話", "重新命名", "取消封存", "刪除"),
    ):
        with translation.override(language):
            markup = entries.render_entries([listed, archived], current_id=None)
        elements = _parse(markup).elements
        assert _texts(markup, "conversation-link") == [new_chat, "Old"]
        assert [e.get("title") for e in elements if e.get("class") == "item-action item-rename"] == [rename]
        assert _texts(markup, "link-button") == [unarchive]
        assert _texts(markup, "item-action danger") == [delete]


@pytest.mark.django_db
def test_the_archive_page_posts_each_unarchive_form_with_the_requests_csrf_token(client, alice, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(archived=True)
    client.force_login(alice)
    page = client.get(reverse("conversations:conversation-archived-list")).content.decode()
    entry = page[page.index(f'<div id="archived-{conversation.public_id}"') :]
    entry = entry[: entry.index("</div>")]
    tokens = [e.get("value") for e in _parse(entry).elements if e.get("name") == "csrfmiddlewaretoken"]
    assert len(tokens) == 1 and len(tokens[0] or "") == 64  # A masked token (django.middleware.csrf).


@pytest.mark.django_db
def test_a_renamed_entry_is_marked_current_only_on_the_page_of_its_conversation(client, alice, conversation):
    client.force_login(alice)
    rename = reverse("conversations:conversation-rename", args=[conversation.public_id])
    entry_class = re.compile(rf'id="conversation-{conversation.public_id}" class="([^"]*)"')
    for page_url, expected in (
        (conversation.get_absolute_url(), "conversation-item current"),
        ("/", "conversation-item"),
    ):
        answer = client.post(
            rename,
            {"title": "Renamed", "place": "sidebar"},
            HTTP_HX_REQUEST="true",
            HTTP_HX_CURRENT_URL=f"http://testserver{page_url}",
        ).content.decode()
        assert entry_class.findall(answer) == [expected]
