"""Shared fixtures: the cast (alice, bob, admin), the fake upstream and personas on it."""

import pytest
from aiohttp import client_proto
from channels.layers import channel_layers
from django.utils import translation

from conversations import services
from personas import crypto
from personas.models import ChatModel, Persona, Provider
from tests.fakes.openai_server import FakeOpenAIServer

# Websocket fixtures (open_socket, write_counter) for every test folder.
pytest_plugins = ["tests.sockets"]


@pytest.fixture(scope="session")
def fake_upstream():
    """The project's fake OpenAI-compatible server on loopback, for the whole run."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def upstream(fake_upstream):
    """The fake upstream with its request log cleared."""
    fake_upstream.clear()
    fake_upstream.api_key = None
    return fake_upstream


def streamed_requests(server: FakeOpenAIServer) -> list:
    """Return the streaming chat completion requests `server` received (replies, not titles or tests)."""
    return [r for r in server.requests if r.path.endswith("/chat/completions") and (r.body or {}).get("stream")]


class UpstreamReads:
    """Counts the reads of upstream connections (aiohttp's `ResponseHandler.data_received`)."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def upstream_reads(monkeypatch) -> UpstreamReads:
    """Count this process's reads of upstream connections from here on."""
    reads = UpstreamReads()
    data_received = client_proto.ResponseHandler.data_received

    def counted(protocol, data: bytes) -> None:
        if data:
            reads.count += 1
        data_received(protocol, data)

    monkeypatch.setattr(client_proto.ResponseHandler, "data_received", counted)
    return reads


@pytest.fixture(scope="session", autouse=True)
def _no_persistent_connections():
    # Async tests reach the database from asgiref's worker threads; with a
    # connection age above 0 those connections outlive the test and keep
    # PostgreSQL from dropping the test database at the end of the run.
    from django.db import connections

    connections["default"].settings_dict["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def _fresh_channel_layers():
    # Each async test has its own event loop; in-memory layer queues must not leak between them.
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-password-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-password-1")


@pytest.fixture
def provider(upstream):
    return Provider.objects.create(
        name="Fake upstream",
        base_url=upstream.base_url,
        is_local=True,
        api_key_encrypted=crypto.encrypt("sk-test-secret-key-1234"),
        read_timeout_s=5,
        total_timeout_s=30,
    )


@pytest.fixture
def make_persona(provider):
    """Return a factory of personas on the fake upstream; `model_id` picks its behaviour."""

    def make(model_id: str = "fake-echo", **fields) -> Persona:
        model, _ = ChatModel.objects.get_or_create(
            provider=provider, model_id=model_id, defaults={"enabled": True, "display_name": model_id}
        )
        slug = fields.pop("slug", None) or f"p-{Persona.objects.count() + 1}"
        defaults = {"name": "Assistant", "greeting": "Hello! How can I help?", "system_prompt": "Be brief."}
        return Persona.objects.create(model=model, slug=slug, **{**defaults, **fields})

    return make


@pytest.fixture
def persona(make_persona):
    return make_persona()


@pytest.fixture
def conversation(alice, persona):
    """Alice's new conversation with `persona` (its greeting, if any); a module needing more history overrides it."""
    return services.conversation_create(owner=alice, persona=persona)


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # The manifest storage needs `collectstatic`; tests render pages without it.
    # A fast hasher: the real one costs ~0.5 s per user created.
    # No upstream retries unless a test is about them: they only slow error tests down.
    settings.CHAT_UPSTREAM_RETRIES = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _default_language_after_the_test():
    # LocaleMiddleware leaves a request's language active on its thread; the next test starts in English.
    yield
    translation.deactivate()


@pytest.fixture
def one_process_channel_layer(settings):
    """Use the one-process channel layer, for tests that read it from synchronous code.

    `async_to_sync` runs each call in an event loop of its own there, and Redis's pub/sub layer keeps
    a channel's messages in the loop that made it. Broadcasts across processes, through Redis, are
    tested with real servers (tests/test_scale_out.py).
    """
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "chatsite.channel_layers.LocalChannelLayer"}}
