"""A reply too large for one websocket frame still ends in the page, fetched over HTTP (CHAT_MAX_SENT_FRAME_BYTES)."""

import pytest
from playwright.sync_api import expect

from tests.e2e.test_chat_flow import ASSISTANT, _open_chat, _send, _sign_up
from tests.servers import DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def site_server(django_db_setup, fake_upstream):
    """This module's daphne process, sending frames of at most 4 KiB."""
    with DaphneServer(static=True, env={"CHAT_MAX_SENT_FRAME_BYTES": "4096"}) as server:
        yield server


def test_a_reply_larger_than_a_frame_streams_and_ends_rendered(page, site, make_persona):
    persona = make_persona("long:2000+delay:1", name="Long talker", slug="long", greeting="Hi, I talk a lot.")
    _sign_up(page, site, "frames")
    _open_chat(page, persona)
    fetched = []  # htmx GETs of the conversation: the final bubble did not fit a frame.
    page.on("request", lambda r: fetched.append(r.url) if r.headers.get("hx-request") and r.url == page.url else None)
    _send(page, "Count to two thousand")
    reply = page.locator(f"{ASSISTANT}[data-status=complete]").last
    expect(reply).to_contain_text("w1999", timeout=30_000)
    expect(reply.locator("p")).to_contain_text("w0 w1 w2")  # The rendered bubble, fetched over HTTP.
    expect(page.locator(ASSISTANT)).to_have_count(2)  # The greeting and the reply, nothing doubled.
    assert fetched == [page.url]
