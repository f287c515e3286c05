"""The XSS corpus in Chromium: every payload stays inert in every place the site shows it.

The 152 payloads of tests/fixtures/xss/payloads.txt (see its SOURCES.md;
tests/conversations/test_rendering.py checks the same corpus on the server
side) go through a real browser as

(a) user messages and (c) rendered replies: one conversation holding all of
    them, made the way the site makes them (`services.message_send`,
    `services.reply_finish` renders), loaded as a page and as the htmx partial,
    their older pages as the htmx fragments the page loads on scroll;
(b) replies streamed one character per delta: each payload typed into the
    composer of a conversation whose model (the fake upstream's ``echo-raw``)
    answers with exactly that text, the server's coalescing window at 0;
(d) conversation titles, in the sidebar (four pages, the older three loaded
    by htmx), in the page header and the document title of each conversation;
(e) persona descriptions, on the persona picker (page and htmx partial);
plus the search page over (a)-(d), and the export views (files, never pages).

Inert means (tests/e2e/inert.py): no dialog, no request leaving the test
server, no script or event handler, no dangerous element or URL, no htmx
attribute in user or model content, ever (a MutationObserver watches while
replies stream and htmx swaps); code shown literally; page hooks intact;
remote images shown as links (the site's default policy). A failure lists
every payload line and place that is not inert.

Each browser test runs against the site as configured ("csp") and without its
Content-Security-Policy ("no-csp", tests/e2e/settings_without_csp.py): a CSP
blocks injected scripts and requests and so would hide a sanitizer bug; the
sanitizer and the escaping alone must keep the corpus inert. The titles test
(152 page loads) runs without the CSP only.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import urllib.request
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Error, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from conversations import rendering, services
from conversations.dom import message_dom_id
from conversations.models import Conversation, Message
from conversations.selectors import SIDEBAR_PAGE_SIZE
from personas.models import Persona
from tests.e2e.inert import Item, Watch, dom_text
from tests.e2e.pages import sign_in
from tests.servers import DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Lines whose payload is fenced or inline code: it must be shown as literal text.
CODE_LINES = range(31, 36)
# POLICY line: a Markdown image of a remote URL, shown as a link while remote images are off (the default).
REMOTE_IMAGE_LINES = {30}
REMOTE_IMAGE = re.compile(r"!\[[^\]]*\]\((\S+?)\)")
TITLE_MAX_CHARS = Conversation._meta.get_field("title").max_length
FINISHED_REPLIES = """n => document.querySelectorAll(
    '#messages article.message[data-role=assistant]:not([data-status=streaming])').length >= n"""
FINISHED_COUNT = """() => document.querySelectorAll(
    '#messages article.message[data-role=assistant]:not([data-status=streaming])').length"""
LAST_PAIR = """() => {
    const articles = [...document.querySelectorAll('#messages article.message')];
    const [user, reply] = articles.slice(-2);
    return [user.id, user.dataset.role, reply.id, reply.dataset.role, reply.dataset.status,
            (reply.querySelector('.message-error') || {}).textContent || ''];
}"""
ENTRIES = "#conversations .conversation-item"
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b")
ASCII_WHITESPACE = re.compile(r"[\t\n\f\r ]+")


def _corpus_path() -> Path:
    fixtures = os.environ.get("CHAT_FIXTURES_DIR")
    if fixtures:
        return Path(fixtures) / "xss" / "payloads.txt"
    return Path(__file__).resolve().parents[1] / "fixtures" / "xss" / "payloads.txt"


@pytest.fixture(scope="module")
def corpus() -> list[tuple[int, str]]:
    """Return (line number, decoded payload) for every line of payloads.txt."""
    path = _corpus_path()
    if not path.is_file():
        pytest.fail(f"The XSS corpus is missing: {path}")
    with path.open(encoding="ascii") as lines:
        return [(n, codecs.decode(line.rstrip("\n"), "unicode_escape")) for n, line in enumerate(lines, start=1)]


@pytest.fixture(scope="module", params=["csp", "no-csp"])
def site_server(request, django_db_setup, fake_upstream):
    """The site in daphne with its Content-Security-Policy ("csp") or without it ("no-csp"), for this module.

    Every delta goes out on its own (no coalescing window) and a user may
    send as often as the corpus needs.
    """
    env = {"CHAT_COALESCE_MS": "0", "CHAT_DEFAULT_SENDS_PER_MINUTE": "0"}
    if request.param == "no-csp":
        env["DJANGO_SETTINGS_MODULE"] = "tests.e2e.settings_without_csp"
    with DaphneServer(static=True, env=env) as server:
        if request.param == "no-csp":
            with urllib.request.urlopen(server.url("/accounts/login/"), timeout=10) as response:
                assert "Content-Security-Policy" not in response.headers
        yield server


def _swap_main(page: Page, watch: Watch, url: str) -> list[str]:
    """Load `url` as htmx does when it swaps a view's partial into #main; return a problem if it could not."""
    watch.set_phase("htmx partial")
    try:
        page.evaluate("url => htmx.ajax('GET', url, {target: '#main', swap: 'innerHTML'})", url)
    except Error as exc:
        return [f"page [htmx partial]: could not swap {url} in: {exc.message.splitlines()[0]}"]
    return []


def _load_older_messages(page: Page) -> None:
    """Scroll the conversation's messages to the top until no older page is left to load."""
    while page.locator("#messages .messages-older").count():
        shown = page.locator("#messages article.message").count()
        page.eval_on_selector("#messages", "list => { list.scrollTop = 0; }")
        page.wait_for_function("n => document.querySelectorAll('#messages article.message').length > n", arg=shown)


def _log_in(page: Page, site, user) -> None:
    sign_in(page.context, site, user)


def _label(line: int, place: str) -> str:
    return f"L{line:03d} {place}"


def _stored(text: str) -> str:
    """Return `text` as the site stores it: U+0000 becomes U+FFFD (services.storable_text)."""
    return services.storable_text(text)


def _reply_item(line: int, payload: str, selector: str, label: str) -> Item:
    """Return what the rendered reply of `payload` must show beyond the generic rules."""
    code = link = None
    if line in CODE_LINES:
        assert payload.startswith("`"), f"line {line} is not the code payload this test expects"
        code = payload.split("\n", 1)[1].rsplit("```", 1)[0] if payload.startswith("```") else payload.strip("`")
    if line in REMOTE_IMAGE_LINES:
        link = REMOTE_IMAGE.search(payload)[1]
    return Item(selector=selector, label=label, code=code, link=link)


def _document_title(title: str) -> str:
    """Return `document.title` for a <title> holding `title` (RCDATA: U+0000 shows as U+FFFD)."""
    text = title.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    return ASCII_WHITESPACE.sub(" ", text).strip("\t\n\f\r ")


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _user_text(content: str) -> str:
    """Return the textContent of a user bubble holding `content`: as typed, formulas as the text of their MathML."""
    markup = str(rendering.render_user_text(content))
    if "<math" not in markup:
        return dom_text(content)
    parser = _TextOf()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def _is_subsequence(part: str, whole: str) -> bool:
    rest = iter(whole)
    return all(char in rest for char in part)


def _send_with_reply(conversation: Conversation, payload: str) -> services.SentMessage:
    """Save `payload` as a question and as its finished reply, the way the site does (the reply is rendered)."""
    sent = services.message_send(conversation=conversation, text=_stored(services.message_text_clean(text=payload)))
    services.reply_finish(message=sent.assistant_message, content=_stored(payload), status=Message.Status.COMPLETE)
    return sent


def _server_errors(site: DaphneServer) -> list[str]:
    """Return the exception lines of the server's log (the last line of each traceback), without repeats."""
    lines = (line for line in site.log().splitlines() if EXCEPTION_LINE.match(line))
    return [f"server: {line}" for line in dict.fromkeys(lines)]


def _assert_inert(watch: Watch, problems: list[str]) -> None:
    found = list(dict.fromkeys(problems + watch.events))  # a whole-page check repeats earlier finds
    assert not found, f"{len(found)} violation(s):\n" + "\n".join(found)


def test_payloads_stay_inert_as_user_messages_and_rendered_replies(page, site, alice, persona, corpus):
    conversation = services.conversation_create(owner=alice, persona=persona)
    labels: dict[str, str] = {}
    items: list[Item] = []
    for line, payload in corpus:
        sent = _send_with_reply(conversation, payload)
        question, reply = sent.user_message, sent.assistant_message
        for message, place in ((question, "user message"), (reply, "rendered reply")):
            labels[f"message-{message.public_id}"] = _label(line, place)
            hit = f"{conversation.get_absolute_url()}?around={message.public_id}#{message_dom_id(message.public_id)}"
            labels[hit] = _label(line, f"{place} in search")
        items.append(
            Item(
                selector=f"#message-{question.public_id}-body",
                label=_label(line, "user message"),
                text=_user_text(question.content),
            )
        )
        items.append(_reply_item(line, payload, f"#message-{reply.public_id}-body", _label(line, "rendered reply")))
    url = site.url(conversation.get_absolute_url())
    watch = Watch(page, site.origin)
    _log_in(page, site, alice)

    page.goto(url)
    _load_older_messages(page)  # The page opens at the latest messages; the others come in htmx fragments.
    problems = watch.check(hooks=("chat",), items=items, labels=labels)
    if page.locator("#messages article.message").count() != 1 + 2 * len(corpus):  # the greeting, then each pair
        problems.append(f"page: {page.locator('#messages article.message').count()} bubbles")
    problems += _swap_main(page, watch, url)
    _load_older_messages(page)
    problems += watch.check(hooks=("chat",), items=items, labels=labels)
    watch.set_phase("search")
    page.goto(site.url("/search/?q=alert"))
    if page.locator(".search-hit").count() <= 10:
        problems.append(f"search: {page.locator('.search-hit').count()} hits")
    problems += watch.check(labels=labels)

    _assert_inert(watch, problems)


def test_payloads_stay_inert_while_replies_stream_one_character_per_delta(
    page, site, alice, make_persona, corpus, browser_loop
):
    persona = make_persona("echo-raw", name="Parrot", slug="parrot", greeting="I repeat you, character by character.")
    conversation = services.conversation_create(owner=alice, persona=persona)
    with browser_loop.paused():  # The rename broadcasts the new title through async_to_sync.
        services.conversation_rename(conversation=conversation, title="Streamed corpus")  # no title request upstream
    url = site.url(conversation.get_absolute_url())
    watch = Watch(page, site.origin)
    _log_in(page, site, alice)
    page.goto(url)
    page.wait_for_function(FINISHED_REPLIES, arg=1)
    labels: dict[str, str] = {}
    problems: list[str] = []

    for line, payload in corpus:
        try:
            watch.set_phase(_label(line, "streaming"))
            problems += _send_and_check(page, watch, site, url=url, line=line, payload=payload, labels=labels)
        except Error as exc:  # e.g. the page navigated away
            _assert_inert(watch, [*problems, f"L{line:03d}: {exc.message.splitlines()[0]} (page at {page.url})"])

    _assert_inert(watch, problems)


def _send_and_check(
    page: Page, watch: Watch, site: DaphneServer, *, url: str, line: int, payload: str, labels: dict[str, str]
) -> list[str]:
    """Send `payload` with the composer, wait for its finished reply, return what is not inert.

    A reply that does not finish in 30 s is a problem (with the server's
    errors); the next payload is sent all the same.

    Raises:
        playwright.sync_api.Error: the page left the conversation.
    """
    if page.url != url:
        raise Error(f"the page left the conversation for {page.url}")
    finished = page.evaluate(FINISHED_COUNT)
    composer = page.locator("#composer textarea[name=message]")
    composer.fill(payload)
    composer.press("Enter")
    try:
        page.wait_for_function(FINISHED_REPLIES, arg=finished + 1, timeout=30_000)
    except PlaywrightTimeoutError:
        alert = page.locator("#composer-alert").all_inner_texts()
        return [f"L{line:03d}: no finished reply in 30 s (composer alert {alert})", *_server_errors(site)]
    user_id, user_role, reply_id, reply_role, status, error = page.evaluate(LAST_PAIR)
    problems = [] if (user_role, reply_role) == ("user", "assistant") else [f"L{line:03d}: bubbles out of order"]
    labels[user_id] = _label(line, "user message (composer)")
    labels[reply_id] = _label(line, "streamed reply")
    expected = dom_text(services.message_text_clean(text=payload))
    expected_question = _user_text(_stored(services.message_text_clean(text=payload)))
    if status != "complete":
        problems.append(f"L{line:03d}: the reply ended {status}: {error}")
    items = [
        Item(selector=f"#{user_id}-body", label=labels[user_id], text=expected_question),
        _reply_item(line, payload, f"#{reply_id}-body", _label(line, "final reply")),
    ]
    problems += watch.check(hooks=("chat",), items=items, labels=labels)
    frames, streamed = page.evaluate("id => [window.__streamFrames[id] || 0, window.__streamedText[id]]", reply_id)
    # The first delta goes out at once and the rest after it: two frames or more, whatever the timing.
    if frames < 2:
        problems.append(f"L{line:03d}: the reply arrived in {frames} frame(s), not streamed")
    # Deltas may be dropped under load (the final bubble repairs that), never changed or reordered.
    if not streamed or not _is_subsequence(streamed, expected):
        problems.append(f"L{line:03d}: the streaming bubble showed {streamed!r:.120}, not the literal text")
    return problems


# 152 page loads: run once, without the CSP (the stricter of the two for this oracle).
@pytest.mark.parametrize("site_server", ["no-csp"], indirect=True)
def test_payloads_stay_inert_as_conversation_titles(page, site, alice, persona, corpus):
    now = timezone.now()
    conversations = Conversation.objects.bulk_create(
        [
            Conversation(
                owner=alice,
                persona=persona,
                title=_stored(payload[:TITLE_MAX_CHARS]),
                title_source=Conversation.TitleSource.USER,
            )
            for _, payload in corpus
        ]
    )
    labels: dict[str, str] = {}
    sidebar_items: list[Item] = []
    for i, ((line, _), conversation) in enumerate(zip(corpus, conversations, strict=True)):
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now - timedelta(minutes=i))
        labels[f"conversation-{conversation.public_id}"] = _label(line, "title in the sidebar")
        labels[f"conversation-{conversation.public_id}-heading"] = _label(line, "title in the header")
        labels[conversation.get_absolute_url()] = _label(line, "title in search")
        sidebar_items.append(
            Item(
                selector=f"#conversation-{conversation.public_id}-title",
                label=_label(line, "title in the sidebar"),
                text=dom_text(conversation.title),
            )
        )
    watch = Watch(page, site.origin)
    _log_in(page, site, alice)

    watch.set_phase("sidebar")
    page.goto(site.url("/"))
    problems = []
    try:
        # The older pages (selectors.SIDEBAR_PAGE_SIZE titles each) come by htmx as the list scrolls.
        for expected in (*range(2 * SIDEBAR_PAGE_SIZE, len(corpus), SIDEBAR_PAGE_SIZE), len(corpus)):
            page.locator(ENTRIES).last.scroll_into_view_if_needed()
            page.wait_for_function(f"() => document.querySelectorAll('{ENTRIES}').length >= {expected}")
    except Error as exc:
        problems.append(f"sidebar: older pages did not load: {exc.message.splitlines()[0]} (page at {page.url})")
    problems += watch.check(items=sidebar_items, labels=labels)
    for (line, _), conversation in zip(corpus, conversations, strict=True):
        watch.phase = _label(line, "conversation page")
        heading = Item(
            selector=f"#conversation-{conversation.public_id}-heading-title",
            label=_label(line, "title in the header"),
            text=dom_text(conversation.title),
        )
        try:
            page.goto(site.url(conversation.get_absolute_url()))
            title = page.evaluate("() => document.title")
        except Error as exc:
            problems.append(f"L{line:03d} conversation page: {exc.message.splitlines()[0]} (page at {page.url})")
            continue
        if title != _document_title(f"{conversation.title} · Chat"):  # "title · site name"
            problems.append(f"L{line:03d} document title: {title!r:.120}")
        problems += watch.check(hooks=("chat",), items=[heading], labels=labels)
    watch.set_phase("search")
    page.goto(site.url("/search/?q=alert"))
    problems += watch.check(labels=labels)

    _assert_inert(watch, problems)


def test_payloads_stay_inert_as_persona_descriptions(page, site, alice, make_persona, corpus):
    limit = Persona._meta.get_field("description").max_length
    labels: dict[str, str] = {}
    items: list[Item] = []
    for line, payload in corpus:
        persona = make_persona(
            "fake-echo", name=f"Persona {line:03d}", slug=f"xss-{line:03d}", description=_stored(payload[:limit])
        )
        labels[persona.slug] = _label(line, "persona description")
        items.append(
            Item(
                selector=f".persona-card[data-persona='{persona.slug}'] .persona-description",
                label=labels[persona.slug],
                text=dom_text(persona.description),
            )
        )
    watch = Watch(page, site.origin)
    _log_in(page, site, alice)

    page.goto(site.url("/"))
    problems = watch.check(items=items, labels=labels)
    problems += _swap_main(page, watch, site.url("/"))
    problems += watch.check(items=items, labels=labels)

    if page.locator(".persona-card").count() != len(corpus):
        problems.append(f"page: {page.locator('.persona-card').count()} persona cards, not {len(corpus)}")
    _assert_inert(watch, problems)


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("json", "application/json"), ("md", "text/markdown"), ("txt", "text/plain")],
)
def test_exports_of_the_payloads_are_downloads_never_pages(client, alice, persona, corpus, fmt, content_type):
    conversation = services.conversation_create(owner=alice, persona=persona)
    for _, payload in corpus:
        _send_with_reply(conversation, payload)
    # Line 65 closes an inline <script>: the classic break-out of JSON embedded in an HTML export.
    title = dict(corpus)[65]
    Conversation.objects.filter(pk=conversation.pk).update(title=title, title_source=Conversation.TitleSource.USER)
    client.force_login(alice)

    response = client.get(reverse("transfer:conversation-export", args=[conversation.public_id, fmt]))

    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == content_type
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    body = response.content.decode()
    if fmt == "json":
        [exported] = json.loads(body)["conversations"]
        texts = [m["content"] for m in exported["messages"]]
        assert exported["title"] == title
        for _, payload in corpus:
            assert _stored(payload) in texts and _stored(services.message_text_clean(text=payload)) in texts
    else:
        missing = [line for line, payload in corpus if _stored(payload.strip()) not in body]
        assert not missing, f"payload lines not in the {fmt} export: {missing}"
