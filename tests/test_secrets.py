"""A provider's API key goes to that provider's base URL and nowhere else.

Not to a page, a fragment, a websocket frame, a log line or a debug error
page; and over the network only in the Authorization header of requests to
its own provider (two providers on two fake servers, each with its own key).
"""

import logging

import httpx2
import openai
import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse
from openai._vendor.httpx_aiohttp import AiohttpTransport

from conversations import services
from conversations.models import Message
from personas import crypto
from personas.models import ChatModel, Persona, Provider
from tests.fakes.openai_server import FakeOpenAIServer
from tests.sockets import replies_settled, wait_for_reply

KEY = "sk-test-secret-key-1234"  # The `provider` fixture's key (tests/conftest.py).
KEY_B = "sk-second-provider-key-5678"
NEW_KEY = "sk-newly-entered-admin-key-4321"  # Kept away from the code the debug page quotes.
# Every logger that could see a request: the site's, the SDK's and its HTTP stack's.
LOGGERS = [
    *("", "conversations", "personas", "django", "openai", "httpx", "httpx2", "httpcore", "httpcore2", "asyncio"),
    *("aiohttp.client", "aiohttp.internal"),
]
# The async transports under httpx2's client: its own, and the SDK's aiohttp one that llm/client.py uses.
ASYNC_TRANSPORTS = (httpx2.AsyncHTTPTransport, AiohttpTransport)


def assert_no_key(text: str, *keys: str) -> None:
    for key in keys or (KEY,):
        assert key not in text
        assert key[:-4] not in text


@pytest.fixture
def all_logs(caplog):
    """Capture every log record at DEBUG, including loggers settings.LOGGING quiets; return caplog."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def logged_text(caplog) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(f"{formatter.format(record)} {record.args!r}" for record in caplog.records)


@pytest.fixture
def sent_requests(monkeypatch):
    """Record (url, headers) of every HTTP request the process sends through httpx2, sync or async."""
    sent: list[tuple[httpx2.URL, httpx2.Headers]] = []
    handle_sync = httpx2.HTTPTransport.handle_request

    def recording(handle_async):
        async def record_async(self, request):
            sent.append((request.url, request.headers))
            return await handle_async(self, request)

        return record_async

    def record_sync(self, request):
        sent.append((request.url, request.headers))
        return handle_sync(self, request)

    for transport in ASYNC_TRANSPORTS:
        monkeypatch.setattr(transport, "handle_async_request", recording(transport.handle_async_request))
    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", record_sync)
    return sent


@pytest.fixture
def second_upstream():
    """Another fake OpenAI server, accepting only KEY_B."""
    with FakeOpenAIServer(api_key=KEY_B) as server:
        yield server


@pytest.fixture
def second_provider(second_upstream):
    return Provider.objects.create(
        name="Second upstream",
        base_url=second_upstream.base_url,
        api_key_encrypted=crypto.encrypt(KEY_B),
        read_timeout_s=5,
        total_timeout_s=30,
    )


def _persona_on(provider: Provider, model_id: str, slug: str) -> Persona:
    model = ChatModel.objects.create(provider=provider, model_id=model_id, enabled=True)
    return Persona.objects.create(model=model, slug=slug, name=slug, greeting="Hello!", system_prompt="Be brief.")


async def _chat(open_socket, user, persona: Persona, text: str, *, status: str = "complete") -> list[str]:
    conversation = await sync_to_async(services.conversation_create)(owner=user, persona=persona)
    socket = await open_socket(user, conversation.public_id)
    await socket.send(text)
    frames = await socket.receive_final(status)
    await wait_for_reply({"conversation": conversation})
    # The title, generated after the first reply, also calls the provider: wait for it.
    await replies_settled()
    await socket.close()
    return frames


# (a) Pages, fragments and frames


@pytest.mark.django_db
def test_admin_provider_pages_never_show_the_key(admin_client, provider, upstream):
    upstream.api_key = "sk-the-key-the-provider-wants"  # So "Test connection" gets the upstream's 401.
    changelist = reverse("admin:personas_provider_changelist")
    pages = [
        admin_client.get(changelist),
        admin_client.get(reverse("admin:personas_provider_add")),
        admin_client.get(reverse("admin:personas_provider_change", args=[provider.pk])),
        admin_client.post(changelist, {"action": "test_connection", "_selected_action": [provider.pk]}, follow=True),
        admin_client.post(changelist, {"action": "fetch_models", "_selected_action": [provider.pk]}, follow=True),
    ]

    assert "401" in pages[3].content.decode()  # The upstream's refusal is shown, without the key.
    for response in pages:
        assert response.status_code == 200
        assert_no_key(response.content.decode())


@pytest.mark.django_db
def test_chat_page_and_persona_picker_never_show_the_key(client, alice, persona):
    conversation = services.conversation_create(owner=alice, persona=persona)
    client.force_login(alice)
    pages = [
        client.get(reverse("conversations:conversation-new")),
        client.get(reverse("conversations:conversation-new"), headers={"HX-Request": "true"}),
        client.get(conversation.get_absolute_url()),
        client.get(conversation.get_absolute_url(), headers={"HX-Request": "true"}),
    ]

    for response in pages:
        assert response.status_code == 200
        assert_no_key(response.content.decode())


@pytest.mark.django_db(transaction=True)
async def test_a_refused_key_shows_an_error_bubble_without_the_key(alice, persona, upstream, open_socket, all_logs):
    upstream.api_key = "sk-the-key-the-provider-wants"

    frames = await _chat(open_socket, alice, persona, "Hello?", status="error")

    reply = await Message.objects.filter(role="assistant", status="error").alast()
    assert "401" in reply.error_text
    assert_no_key("\n".join(frames))
    assert_no_key(reply.error_text + reply.content_html)
    page = await sync_to_async(_render_conversation)(alice, reply.conversation_id)
    assert "401" in page
    assert_no_key(page)
    # (b) Nor in any log line of the failed call.
    assert any(record.name.startswith("openai") for record in all_logs.records)
    assert_no_key(logged_text(all_logs))


def _render_conversation(user, conversation_pk: int) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    conversation = user.conversations.get(pk=conversation_pk)
    return client.get(conversation.get_absolute_url()).content.decode()


# (b) Logs of a streamed reply


@pytest.mark.django_db(transaction=True)
async def test_a_streamed_reply_logs_nothing_of_the_key(alice, persona, open_socket, all_logs, sent_requests):
    frames = await _chat(open_socket, alice, persona, "Tell me something")

    assert sent_requests  # The reply did go upstream, with the key ...
    assert any(record.name.startswith(("openai", "httpx", "httpcore")) for record in all_logs.records)
    assert_no_key(logged_text(all_logs))  # ... and none of the SDK's debug lines holds it,
    assert_no_key("\n".join(frames))  # nor any frame.


# (c) Django's debug error page


@pytest.fixture
def debug_admin_client(admin_client, settings):
    """The admin's client on a site in DEBUG, answering a view's exception with the technical 500 page."""
    settings.DEBUG = True
    admin_client.raise_request_exception = False
    return admin_client


def _debug_page(response) -> str:
    assert response.status_code == 500
    html = response.content.decode()
    assert "Traceback" in html and "Local vars" in html  # The technical page, with each frame's variables.
    return html


@pytest.mark.django_db
def test_debug_page_of_a_failed_provider_call_hides_the_key(debug_admin_client, provider, monkeypatch):
    async def explode(self, request):
        raise RuntimeError("the transport broke")

    for transport in ASYNC_TRANSPORTS:
        monkeypatch.setattr(transport, "handle_async_request", explode)

    response = debug_admin_client.post(
        reverse("admin:personas_provider_changelist"), {"action": "test_connection", "_selected_action": [provider.pk]}
    )

    assert_no_key(_debug_page(response))


@pytest.mark.django_db
def test_debug_page_of_a_failed_sdk_client_hides_the_key(debug_admin_client, provider, monkeypatch):
    build = openai.AsyncOpenAI.__init__

    def explode_after_build(self, *args, **kwargs):
        build(self, *args, **kwargs)
        raise RuntimeError("the client broke")

    monkeypatch.setattr(openai.AsyncOpenAI, "__init__", explode_after_build)

    response = debug_admin_client.post(
        reverse("admin:personas_provider_changelist"), {"action": "fetch_models", "_selected_action": [provider.pk]}
    )

    assert_no_key(_debug_page(response))


@pytest.mark.django_db
def test_debug_page_of_a_failed_key_change_hides_the_new_key(debug_admin_client, provider, monkeypatch):
    def explode():
        raise RuntimeError("no key material")

    monkeypatch.setattr(crypto, "_multi_fernet", explode)  # Fails inside encrypt(), the new key in hand.

    response = debug_admin_client.post(
        reverse("admin:personas_provider_change", args=[provider.pk]),
        {
            "name": provider.name,
            "base_url": provider.base_url,
            "is_local": "on",
            "api_key": NEW_KEY,
            "connect_timeout_s": "10",
            "read_timeout_s": "60",
            "total_timeout_s": "600",
        },
    )

    assert_no_key(_debug_page(response), NEW_KEY, KEY)


# (d) Each key goes to its own provider only


def _assert_each_server_saw_only_its_key(upstream, second_upstream, sent_requests) -> None:
    for server, key in ((upstream, KEY), (second_upstream, KEY_B)):
        assert server.requests
        for request in server.requests:
            assert request.headers.get("authorization") == f"Bearer {key}"
    hosts = {(url.host, url.port) for url, _ in sent_requests}
    assert hosts == {("127.0.0.1", upstream.port), ("127.0.0.1", second_upstream.port)}
    for url, headers in sent_requests:
        expected = KEY if url.port == upstream.port else KEY_B
        assert headers["authorization"] == f"Bearer {expected}"
        other = KEY_B if expected == KEY else KEY
        assert all(other not in value for value in headers.values())


@pytest.mark.django_db
def test_admin_calls_send_each_provider_its_own_key_only(
    admin_client, provider, upstream, second_provider, second_upstream, sent_requests
):
    upstream.api_key = KEY  # Each fake server answers only its own key.
    ChatModel.objects.create(provider=provider, model_id="fake-echo", enabled=True)
    changelist = reverse("admin:personas_provider_changelist")
    both = [provider.pk, second_provider.pk]

    for action in ("fetch_models", "test_connection"):
        response = admin_client.post(changelist, {"action": action, "_selected_action": both}, follow=True)
        # The auth failure's message, not "401": a random port in the page can contain those digits.
        assert "refused the API key" not in response.content.decode()

    _assert_each_server_saw_only_its_key(upstream, second_upstream, sent_requests)


@pytest.mark.django_db(transaction=True)
async def test_replies_send_each_provider_its_own_key_only(
    alice, provider, upstream, second_provider, second_upstream, open_socket, sent_requests
):
    upstream.api_key = KEY
    persona_a = await sync_to_async(_persona_on)(provider, "fake-echo", "on-a")
    persona_b = await sync_to_async(_persona_on)(second_provider, "fake-echo", "on-b")

    await _chat(open_socket, alice, persona_a, "Hello A")
    await _chat(open_socket, alice, persona_b, "Hello B")

    _assert_each_server_saw_only_its_key(upstream, second_upstream, sent_requests)
