"""A message's bubble (conversations/bubbles.py), and the title sent with it: what a person or a model wrote stays text.

Each payload of the XSS corpus (tests/fixtures/xss/payloads.txt) goes into
every field of a bubble that a person, a model or a provider fills: the
question's text (shown as saved, and in the copy and edit buttons), a
reply's streamed text, its error, its model's id, and a file's name (a
link's title, an image's alt text). The bubble is parsed with the standard
library's HTML parser: its elements and their attributes must be the
bubble's own, each value exactly the payload. So must the title fragment
every tab gets with a send's bubbles (`fragments.title_html`).
"""

import uuid
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import translation

from attachments.models import Attachment
from conversations import bubbles, fragments, rendering
from conversations.models import Conversation, Message, Versions
from tests.conversations.test_rendering import CORPUS, _corpus_path, _parse

VOID_ELEMENTS = {"img", "input", "br"}
# The bubble's own elements and attributes; anything else came from a payload.
BUBBLE_ATTRIBUTES = {
    "article": {"id", "data-message-id", "class", "data-role", "data-status", "hx-swap-oob"},
    "div": {"id", "class"},
    "p": {"class", "role"},
    "footer": {"class"},
    "nav": {"class", "aria-label"},
    "button": {"type", "class", "data-source", "title", "ws-send", "hx-vals", "hx-post", "hx-swap", "disabled"},
    "span": {"class", "title", "aria-hidden"},
    "ul": {"class", "aria-label"},
    "li": {"class", "data-attachment-id"},
    "a": {"href", "target", "rel", "class", "title"},
    "img": {"src", "alt", "loading", "width", "height"},
}


def _files(message: Message, attachments: list[Attachment]) -> Message:
    """Give unsaved `message` an id and `attachments` as its prefetched files, as pages load them."""
    message.pk = 1
    files = Attachment.objects.none()
    files._result_cache = attachments
    message.__dict__["_prefetched_objects_cache"] = {"attachments": files}
    return message


class _Texts(HTMLParser):
    """Collect the text inside each element of class `wanted` (elements nested in it included)."""

    def __init__(self, wanted: str):
        super().__init__(convert_charrefs=True)
        self.wanted = wanted
        self.texts: list[str] = []
        self.depth = 0  # Elements open inside one of class `wanted`, itself included; 0 outside.

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += 0 if tag in VOID_ELEMENTS else 1
        elif dict(attrs).get("class") == self.wanted:
            self.depth = 1
            self.texts.append("")

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.texts[-1] += data


def _texts(markup: str, wanted: str) -> list[str]:
    """Return the text of each element of `markup` whose class is `wanted`."""
    parser = _Texts(wanted)
    parser.feed(markup)
    parser.close()
    return parser.texts


def own_elements(markup: str, allowed: dict[str, set[str]]) -> list:
    """Return the elements of `markup` after checking each is in `allowed` ({tag: attributes}), attributes and all."""
    elements = _parse(markup).elements
    for element in elements:
        assert element.tag in allowed, f"<{element.tag}> in {markup!r}"
        names = [name for name, _value in element.attrs]
        assert set(names) <= allowed[element.tag], f"{names} on <{element.tag}> in {markup!r}"
    return elements


def _checked(markup: str) -> list:
    """Return the elements of `markup`, a bubble, after checking each is the bubble's own, attributes and all."""
    elements = own_elements(markup, BUBBLE_ATTRIBUTES)
    assert elements[0].tag == "article"
    return elements


@pytest.mark.parametrize("payload", CORPUS)
def test_a_payload_in_a_question_and_its_file_names_stays_text(payload):
    assert payload is not None, f"XSS corpus not found at {_corpus_path()}; set CHAT_FIXTURES_DIR"
    image = Attachment(kind=Attachment.Kind.IMAGE, name=payload, size_bytes=10, width=4, height=3)
    document = Attachment(kind=Attachment.Kind.DOCUMENT, name=payload, size_bytes=2048, text_cut=True)
    question = _files(
        Message(role=Message.Role.USER, status=Message.Status.COMPLETE, content=payload), [image, document]
    )
    question.versions = None
    markup = bubbles.render_bubble(question, Conversation())
    elements = _checked(markup)
    assert [e.get("data-source") for e in elements if e.tag == "button"] == [payload, payload]  # copy, edit
    assert _texts(markup, "message-body message-text") == [payload]
    assert _texts(markup, "attachment-name") == [payload]
    assert [e.get("alt") for e in elements if e.tag == "img"] == [payload]
    assert [e.get("title") for e in elements if e.get("class") == "attachment-doc"] == [payload]
    assert [e.get("href") for e in elements if e.tag == "a"] == [
        reverse("attachments:attachment-file", args=[image.public_id]),
        reverse("attachments:attachment-file", args=[document.public_id]),
    ]


@pytest.mark.parametrize("payload", CORPUS)
def test_a_payload_in_a_question_saved_as_html_is_shown_as_it_was_sanitized(payload):
    assert payload is not None, f"XSS corpus not found at {_corpus_path()}; set CHAT_FIXTURES_DIR"
    saved = str(rendering.render_user_text(payload))
    question = _files(
        Message(role=Message.Role.USER, status=Message.Status.COMPLETE, content=payload, content_html=saved), []
    )
    markup = bubbles.render_bubble(question, Conversation())
    assert f'class="message-body message-text">{saved}</div>' in markup
    assert [e.get("data-source") for e in _parse(markup).elements if e.tag == "button"] == [payload, payload]


@pytest.mark.parametrize("payload", CORPUS)
def test_a_payload_in_a_replys_text_error_and_model_id_stays_text(payload):
    assert payload is not None, f"XSS corpus not found at {_corpus_path()}; set CHAT_FIXTURES_DIR"
    streaming = Message(role=Message.Role.ASSISTANT, status=Message.Status.STREAMING, content=payload)
    markup = bubbles.render_bubble(streaming, Conversation())
    _checked(markup)
    assert rendering.render_plain_text(payload) + "</div>" in markup
    failed = Message(
        role=Message.Role.ASSISTANT,
        status=Message.Status.COMPLETE,
        content=payload,
        error_text=payload,
        model_id=payload,
        completion_tokens=3,
        ttft_ms=120,
        parent_id=1,
    )
    failed.versions = Versions(index=2, total=2, previous=uuid.uuid4(), next=None)
    markup = bubbles.render_bubble(failed, Conversation(), oob=True)
    elements = _checked(markup)
    assert [e.get("data-source") for e in elements if e.tag == "button"] == [None, None, payload, None]
    assert [e.get("role") for e in elements if e.tag == "p"] == ["alert"]
    assert _texts(markup, "message-error") == [payload]
    assert _texts(markup, "message-meta muted") == [f"{payload} · 3 tokens · first token 120 ms"]


def test_a_bubble_speaks_the_language_of_the_page():
    question = _files(Message(role=Message.Role.USER, status=Message.Status.COMPLETE, content="Hi"), [])
    question.versions = None
    reply = Message(
        role=Message.Role.ASSISTANT,
        status=Message.Status.STOPPED,
        content="Hello",
        model_id="gpt-4o",
        completion_tokens=2,
        tokens_estimated=True,
    )
    for language, edit, stopped, tokens in (
        ("en", "Edit", "Stopped.", "about 2 tokens"),
        ("zh-hans", "编辑", "已停止。", "约 2 个 token"),
        ("zh-hant", "編輯", "已停止。", "約 2 個 token"),
    ):
        with translation.override(language):
            assert f">{edit}</button>" in bubbles.render_bubble(question, Conversation())
            shown = bubbles.render_bubble(reply, Conversation())
        assert f'<p class="message-note">{stopped}</p>' in shown
        assert f">{tokens}" in shown


@pytest.mark.parametrize("payload", CORPUS)
def test_a_title_in_every_tab_stays_text(payload):
    assert payload is not None, f"XSS corpus not found at {_corpus_path()}; set CHAT_FIXTURES_DIR"
    conversation_id = uuid.uuid4()
    parsed = _parse(fragments.title_html(conversation_id=conversation_id, title=payload))
    assert [(e.tag, e.attrs) for e in parsed.elements] == [
        ("span", [("id", f"conversation-{conversation_id}-title"), ("hx-swap-oob", "true")]),
        ("span", [("id", f"conversation-{conversation_id}-heading-title"), ("hx-swap-oob", "true")]),
    ]
    assert "".join(parsed.text) == f"{payload}\n{payload}"
