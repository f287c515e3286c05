"""A final bubble lost on the way (a channel layer delivers at most once): the page asks again and ends right."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_chat_flow import ASSISTANT, _open_chat, _send, _sign_up

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FINAL = 'data-status="complete" hx-swap-oob="true"'


def test_a_bubble_whose_final_frame_was_lost_is_completed_by_the_stall_sync(page, site, make_persona):
    dropped: list[str] = []
    sent: list[dict] = []
    armed: list[bool] = []  # Set once the chat exists: its first message goes over HTTP, the second over the socket.

    def relay(ws) -> None:
        server = ws.connect_to_server()

        def to_server(message) -> None:
            sent.append(json.loads(message))
            server.send(message)

        def to_page(message) -> None:
            if armed and FINAL in message and not dropped:
                dropped.append(message)  # The first final bubble never reaches the page.
                return
            ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)

    page.route_web_socket(re.compile(r"/ws/conversations/"), relay)
    persona = make_persona("long:20+delay:20", name="Quick", slug="quick", greeting="Hi.")
    _sign_up(page, site, "lostfinal")
    _open_chat(page, persona)
    _send(page, "Warm up")
    expect(page.locator(ASSISTANT).last).to_have_attribute("data-status", "complete", timeout=20_000)
    armed.append(True)
    _send(page, "Count to twenty")
    reply = page.locator(ASSISTANT).last
    expect(reply).to_contain_text("w19")  # The deltas came; the final bubble did not.
    for _ in range(100):  # The final frame follows the last delta by the reply's write (longer on PostgreSQL).
        if dropped:
            break
        page.wait_for_timeout(50)  # Lets the relay run.
    assert dropped and reply.get_attribute("data-status") == "streaming"
    expect(reply).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(reply.locator("p")).to_contain_text("w0 w1 w2")  # The rendered bubble.
    syncs = [frame for frame in sent if frame.get("action") == "sync"]
    assert syncs[-1]["streaming"] == [reply.get_attribute("data-message-id")] and syncs[-1]["full"] is False
