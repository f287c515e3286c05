"""The XSS corpus on a shared page: every payload stays inert as a shared question and a shared rendered reply.

The same corpus and oracle as tests/e2e/test_xss_corpus.py (its fixtures are
reused, so this runs with and without the site's Content-Security-Policy),
on the page another user sees at a share link.
"""

import pytest

from conversations import services
from sharing.services import conversation_share
from tests.e2e.inert import Item, Watch
from tests.e2e.test_xss_corpus import (  # noqa: F401  (fixtures: the corpus, the server with and without CSP)
    _assert_inert,
    _label,
    _log_in,
    _reply_item,
    _send_with_reply,
    _user_text,
    corpus,
    site_server,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_payloads_stay_inert_on_a_shared_page(page, site, alice, bob, persona, corpus):  # noqa: F811
    conversation = services.conversation_create(owner=alice, persona=persona)
    items: list[Item] = []
    labels: dict[str, str] = {}
    for line, payload in corpus:
        sent = _send_with_reply(conversation, payload)
        items.append(
            Item(
                selector=f"[data-shared-id='{sent.user_message.public_id}'] .message-body",
                label=_label(line, "shared question"),
                text=_user_text(sent.user_message.content),
            )
        )
        reply_selector = f"[data-shared-id='{sent.assistant_message.public_id}'] .message-body"
        items.append(_reply_item(line, payload, reply_selector, _label(line, "shared reply")))
    share = conversation_share(conversation=conversation, show_owner=False)
    watch = Watch(page, site.origin)
    _log_in(page, site, bob)

    page.goto(site.url(share.get_absolute_url()))

    problems = watch.check(items=items, labels=labels)
    shown = page.locator("#shared-messages article.message").count()
    if shown != 1 + 2 * len(corpus):
        problems.append(f"shared page: {shown} bubbles")
    _assert_inert(watch, problems)
