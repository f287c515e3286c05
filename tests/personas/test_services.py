import pytest
from aiohttp import web
from django.core.exceptions import ValidationError

from llm import ErrorKind, LLMError
from personas import crypto, services
from personas.models import ChatModel, Persona, Provider
from tests.fakes.openai_server import DEMO_MODELS, FakeOpenAIServer

pytestmark = pytest.mark.django_db

OPENAI_KEY = "sk-seed-secret-key-abcdef987654"


# -- provider_set_api_key -------------------------------------------------------


def test_set_api_key_stores_it_encrypted(provider):
    services.provider_set_api_key(provider=provider, api_key="sk-new-key-0000111122223333")

    provider.refresh_from_db()
    assert "sk-new-key" not in provider.api_key_encrypted
    assert provider.api_key == "sk-new-key-0000111122223333"


def test_set_api_key_with_empty_string_clears_it(provider):
    services.provider_set_api_key(provider=provider, api_key="")

    provider.refresh_from_db()
    assert provider.api_key_encrypted == ""
    assert provider.api_key == ""


# -- provider_fetch_models ----------------------------------------------------------


def test_fetch_models_creates_disabled_rows_for_every_listed_model(provider, upstream):
    created = services.provider_fetch_models(provider=provider)

    assert [m.model_id for m in created] == ["fake-echo", "fake-long", "gpt-4o-mini"]
    assert all(m.pk for m in created)
    rows = ChatModel.objects.filter(provider=provider)
    assert sorted(rows.values_list("model_id", flat=True)) == ["fake-echo", "fake-long", "gpt-4o-mini"]
    assert not rows.filter(enabled=True).exists()
    assert [m.display_name for m in created] == ["fake-echo", "fake-long", "gpt-4o-mini"]  # no labels listed
    assert upstream.requests[-1].method == "GET"
    assert upstream.requests[-1].path == "/v1/models"
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-test-secret-key-1234"


def test_fetch_models_twice_adds_nothing_the_second_time(provider):
    services.provider_fetch_models(provider=provider)

    assert services.provider_fetch_models(provider=provider) == []
    assert ChatModel.objects.filter(provider=provider).count() == 3


def test_fetch_models_keeps_known_models_as_they_are(provider):
    ChatModel.objects.create(provider=provider, model_id="fake-echo", enabled=True, display_name="Echo")

    created = services.provider_fetch_models(provider=provider)

    assert [m.model_id for m in created] == ["fake-long", "gpt-4o-mini"]
    echo = ChatModel.objects.get(provider=provider, model_id="fake-echo")
    assert echo.enabled and echo.display_name == "Echo"


class _OpenRouterStyleServer(FakeOpenAIServer):
    """Lists models the way OpenRouter does: the human label is in ``name``."""

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "data": [
                    {"id": "openai/gpt-4o", "name": "OpenAI: GPT-4o", "created": 1715367049},
                    {"id": "z/unnamed", "created": 1715367049},
                ]
            }
        )


def _provider_on(server: FakeOpenAIServer) -> Provider:
    return Provider.objects.create(
        name="Labelled upstream",
        base_url=server.base_url,
        api_key_encrypted=crypto.encrypt("sk-labels-0000111122223333"),
    )


def test_fetch_models_stores_the_listed_display_names():
    with FakeOpenAIServer(model_ids=DEMO_MODELS) as server:
        created = services.provider_fetch_models(provider=_provider_on(server))

    assert [(m.model_id, m.display_name, m.enabled) for m in created] == [
        (model_id, label, False) for model_id, label in DEMO_MODELS.items()
    ]
    stored = ChatModel.objects.get(model_id="long:400+delay:30")
    assert str(stored) == "Demo: long reply (400 words, 30 ms apart)"


def test_fetch_models_reads_openrouter_names_and_falls_back_to_the_id():
    with _OpenRouterStyleServer() as server:
        created = services.provider_fetch_models(provider=_provider_on(server))

    assert [(m.model_id, m.display_name) for m in created] == [
        ("openai/gpt-4o", "OpenAI: GPT-4o"),
        ("z/unnamed", "z/unnamed"),
    ]


def test_fetch_models_labels_known_rows_only_where_nobody_edited_the_name():
    labels = {"edited": "Label for edited", "blank": "Label for blank", "as-id": "Label for as-id", "nolabel": ""}
    with FakeOpenAIServer(model_ids=labels) as server:
        provider = _provider_on(server)
        ChatModel.objects.create(provider=provider, model_id="edited", display_name="Admin's name", enabled=True)
        ChatModel.objects.create(provider=provider, model_id="blank", display_name="")
        ChatModel.objects.create(provider=provider, model_id="as-id", display_name="as-id")
        ChatModel.objects.create(provider=provider, model_id="nolabel", display_name="")

        created = services.provider_fetch_models(provider=provider)

    assert created == []
    names = dict(ChatModel.objects.filter(provider=provider).values_list("model_id", "display_name"))
    assert names == {"edited": "Admin's name", "blank": "Label for blank", "as-id": "Label for as-id", "nolabel": ""}
    assert ChatModel.objects.get(model_id="edited").enabled


def test_fetch_models_raises_the_upstream_error_and_creates_nothing(provider, upstream):
    upstream.api_key = "other"

    with pytest.raises(LLMError) as excinfo:
        services.provider_fetch_models(provider=provider)

    assert excinfo.value.kind == ErrorKind.AUTH
    assert excinfo.value.status == 401
    assert not ChatModel.objects.exists()


# -- provider_test --------------------------------------------------------------------


def test_provider_test_sends_one_token_ping_to_the_first_enabled_model(provider, upstream):
    ChatModel.objects.create(provider=provider, model_id="a-disabled", enabled=False)
    ChatModel.objects.create(provider=provider, model_id="fake-echo", enabled=True)

    text = services.provider_test(provider=provider)

    assert "Fake upstream" in text and "fake-echo" in text
    body = upstream.requests[-1].body
    assert body["model"] == "fake-echo"
    assert body["max_tokens"] == 1
    assert body["messages"] == [{"role": "user", "content": "ping"}]


def test_provider_test_uses_the_given_model_id(provider, upstream):
    ChatModel.objects.create(provider=provider, model_id="fake-echo", enabled=True)

    services.provider_test(provider=provider, model_id="fake-long")

    assert upstream.requests[-1].body["model"] == "fake-long"


def test_provider_test_falls_back_to_a_disabled_model(provider, upstream):
    ChatModel.objects.create(provider=provider, model_id="fake-echo", enabled=False)

    services.provider_test(provider=provider)

    assert upstream.requests[-1].body["model"] == "fake-echo"


def test_provider_test_without_models_lists_them(provider, upstream):
    text = services.provider_test(provider=provider)

    assert "3" in text
    assert upstream.requests[-1].path == "/v1/models"


def test_provider_test_raises_the_upstream_error(provider):
    with pytest.raises(LLMError) as excinfo:
        services.provider_test(provider=provider, model_id="status:404")

    assert excinfo.value.kind == ErrorKind.NOT_FOUND
    assert "status:404" in excinfo.value.message


def test_provider_test_raises_auth_error_for_a_refused_key(provider, upstream):
    ChatModel.objects.create(provider=provider, model_id="fake-echo", enabled=True)
    upstream.api_key = "other"

    with pytest.raises(LLMError) as excinfo:
        services.provider_test(provider=provider)

    assert excinfo.value.kind == ErrorKind.AUTH


# -- chat_models_set_enabled -------------------------------------------------------------


def test_set_enabled_changes_only_the_given_models(provider):
    a = ChatModel.objects.create(provider=provider, model_id="a")
    b = ChatModel.objects.create(provider=provider, model_id="b")

    count = services.chat_models_set_enabled(chat_models=ChatModel.objects.filter(pk=a.pk), enabled=True)

    assert count == 1
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.enabled and not b.enabled


# -- defaults_seed_from_env ----------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    return {"OPENAI_API_KEY": OPENAI_KEY, **extra}


def test_seed_creates_openai_provider_model_and_persona_by_default():
    result = services.defaults_seed_from_env(environ=_env())

    provider = Provider.objects.get()
    assert provider.name == "OpenAI"
    assert provider.base_url == "https://api.openai.com/v1"
    model = ChatModel.objects.get()
    assert (model.provider, model.model_id, model.enabled) == (provider, "gpt-4o-mini", True)
    persona = Persona.objects.get()
    assert (persona.slug, persona.name, persona.avatar, persona.model) == ("assistant", "Assistant", "🤖", model)
    assert persona.is_active and persona.greeting and persona.system_prompt
    assert (result.provider, result.chat_model, result.persona) == (provider, model, persona)
    assert result.provider_created and result.chat_model_created and result.persona_created
    assert not result.key_updated


def test_seed_uses_base_url_model_and_label_from_the_environment():
    services.defaults_seed_from_env(
        environ=_env(
            OPENAI_BASE_URL="http://127.0.0.1:9999/v1/",
            OPENAI_MODEL="fake-echo",
            OPENAI_MODEL_LABEL="Offline demo (fake server)",
        )
    )

    provider = Provider.objects.get()
    assert provider.name == "127.0.0.1:9999"
    assert provider.base_url == "http://127.0.0.1:9999/v1"
    assert provider.is_local  # a loopback address: seeding an Ollama or vLLM on this machine works
    model = ChatModel.objects.get()
    assert (model.model_id, model.display_name, str(model)) == (
        "fake-echo",
        "Offline demo (fake server)",
        "Offline demo (fake server)",
    )


def test_seed_stores_the_key_encrypted_only():
    services.defaults_seed_from_env(environ=_env())

    provider = Provider.objects.get()
    assert OPENAI_KEY not in provider.api_key_encrypted
    assert provider.api_key == OPENAI_KEY
    assert OPENAI_KEY not in repr(provider) and OPENAI_KEY not in str(provider)


def test_seed_twice_creates_nothing_new_and_keeps_admin_edits():
    services.defaults_seed_from_env(environ=_env())
    Provider.objects.update(name="My OpenAI")
    ChatModel.objects.update(enabled=False, display_name="Mini")
    Persona.objects.update(greeting="Hi from the admin")

    result = services.defaults_seed_from_env(environ=_env())

    assert (Provider.objects.count(), ChatModel.objects.count(), Persona.objects.count()) == (1, 1, 1)
    assert not (result.provider_created or result.chat_model_created or result.persona_created)
    assert not result.key_updated
    assert Provider.objects.get().name == "My OpenAI"
    assert (ChatModel.objects.get().enabled, ChatModel.objects.get().display_name) == (False, "Mini")
    assert Persona.objects.get().greeting == "Hi from the admin"


def test_seed_does_not_rewrite_an_unchanged_key():
    services.defaults_seed_from_env(environ=_env())
    token = Provider.objects.get().api_key_encrypted

    services.defaults_seed_from_env(environ=_env())

    # Fernet tokens differ on every encryption, so an equal token means no write.
    assert Provider.objects.get().api_key_encrypted == token


def test_seed_updates_the_stored_key_when_the_environment_key_changes():
    services.defaults_seed_from_env(environ=_env())

    result = services.defaults_seed_from_env(environ={"OPENAI_API_KEY": "sk-rotated-key-5555"})

    assert result.key_updated
    assert Provider.objects.get().api_key == "sk-rotated-key-5555"


def test_seed_replaces_a_key_that_no_longer_decrypts(settings):
    services.defaults_seed_from_env(environ=_env())
    settings.SECRET_KEY = "a-completely-different-secret-key-for-this-test"

    result = services.defaults_seed_from_env(environ=_env())

    assert result.key_updated
    assert Provider.objects.get().api_key == OPENAI_KEY


def test_seed_without_api_key_does_nothing():
    environ = {"OPENAI_BASE_URL": "http://127.0.0.1:9999/v1", "OPENAI_API_KEY": "  "}

    result = services.defaults_seed_from_env(environ=environ)

    assert result == services.SeedResult()
    assert not Provider.objects.exists() and not ChatModel.objects.exists() and not Persona.objects.exists()


def test_seed_refuses_a_non_http_base_url_and_creates_nothing():
    with pytest.raises(ValidationError):
        services.defaults_seed_from_env(environ=_env(OPENAI_BASE_URL="ftp://example.com/v1"))

    assert not Provider.objects.exists()


def test_seed_does_not_take_the_name_of_another_provider():
    Provider.objects.create(name="OpenAI", base_url="https://proxy.example.com/v1")

    services.defaults_seed_from_env(environ=_env())

    assert sorted(Provider.objects.values_list("name", flat=True)) == ["OpenAI", "OpenAI (2)"]


def test_seed_never_puts_url_credentials_into_the_provider_name():
    services.defaults_seed_from_env(environ=_env(OPENAI_BASE_URL="https://user:hunter2@llm.example.com/v1"))

    assert Provider.objects.get().name == "llm.example.com"


def test_seed_result_repr_does_not_hold_the_key():
    result = services.defaults_seed_from_env(environ=_env())

    assert OPENAI_KEY not in repr(result)
    assert crypto.mask(OPENAI_KEY) not in repr(result)
