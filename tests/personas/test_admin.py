import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from personas import crypto
from personas.models import ChatModel, Persona, Provider

pytestmark = pytest.mark.django_db

SECRET = "sk-admin-entered-secret-key-9876"


def _messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def _store_undecryptable_key(provider: Provider) -> None:
    # As if the secret key had changed without the old one in the fallbacks.
    with override_settings(SECRET_KEY="a-completely-different-secret-key-for-this-test"):
        token = crypto.encrypt("sk-under-an-old-secret-key")
    Provider.objects.filter(pk=provider.pk).update(api_key_encrypted=token)


def _provider_data(**extra) -> dict:
    data = {
        "name": "Groq",
        "base_url": "https://api.groq.com/openai/v1",
        "is_local": "on",  # the fake upstream of the `provider` fixture is on loopback
        "api_key": "",
        "connect_timeout_s": "10",
        "read_timeout_s": "60",
        "total_timeout_s": "600",
    }
    return {**data, **extra}


# -- changelists ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["provider", "chatmodel", "persona"])
def test_changelist_loads(admin_client, persona, name):
    response = admin_client.get(reverse(f"admin:personas_{name}_changelist"))

    assert response.status_code == 200
    assert SECRET not in response.content.decode()


def test_changelist_of_personas_does_not_query_per_row(admin_client, make_persona):
    make_persona("fake-echo")
    url = reverse("admin:personas_persona_changelist")
    with CaptureQueriesContext(connection) as one:
        admin_client.get(url)
    for model_id in ("fake-long", "model-3", "model-4"):
        make_persona(model_id)

    with CaptureQueriesContext(connection) as four:
        admin_client.get(url)

    assert len(four) == len(one)


def test_changelist_of_models_does_not_query_per_row(admin_client, provider):
    ChatModel.objects.create(provider=provider, model_id="m-1")
    url = reverse("admin:personas_chatmodel_changelist")
    with CaptureQueriesContext(connection) as one:
        admin_client.get(url)
    other = Provider.objects.create(name="Other", base_url="http://127.0.0.1:1/v1")
    for i in range(2, 5):
        ChatModel.objects.create(provider=other if i % 2 else provider, model_id=f"m-{i}")

    with CaptureQueriesContext(connection) as four:
        admin_client.get(url)

    assert len(four) == len(one)


def test_provider_changelist_shows_only_the_masked_key(admin_client, provider):
    response = admin_client.get(reverse("admin:personas_provider_changelist"))

    html = response.content.decode()
    assert "sk-test-secret-key-1234" not in html
    assert crypto.mask("sk-test-secret-key-1234") in html


# -- provider form: the key is write-only --------------------------------------------


def test_adding_a_provider_stores_the_key_encrypted(admin_client):
    response = admin_client.post(reverse("admin:personas_provider_add"), _provider_data(api_key=SECRET))

    assert response.status_code == 302
    provider = Provider.objects.get(name="Groq")
    assert SECRET not in provider.api_key_encrypted
    assert provider.api_key == SECRET


def test_change_page_never_contains_the_key(admin_client, provider):
    response = admin_client.get(reverse("admin:personas_provider_change", args=[provider.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "sk-test-secret-key-1234" not in html
    assert provider.api_key_encrypted not in html
    assert 'type="password"' in html


def test_a_rejected_form_does_not_echo_the_entered_key(admin_client):
    response = admin_client.post(
        reverse("admin:personas_provider_add"), _provider_data(api_key=SECRET, base_url="ftp://example.com/v1")
    )

    assert response.status_code == 200
    assert "base_url" in response.context["adminform"].form.errors
    assert SECRET not in response.content.decode()
    assert not Provider.objects.exists()


def test_saving_with_an_empty_key_keeps_the_current_key(admin_client, provider):
    response = admin_client.post(
        reverse("admin:personas_provider_change", args=[provider.pk]),
        _provider_data(name="Renamed", base_url=provider.base_url),
    )

    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.name == "Renamed"
    assert provider.api_key == "sk-test-secret-key-1234"


def test_saving_with_a_new_key_replaces_it(admin_client, provider):
    admin_client.post(
        reverse("admin:personas_provider_change", args=[provider.pk]),
        _provider_data(base_url=provider.base_url, api_key=SECRET),
    )

    provider.refresh_from_db()
    assert provider.api_key == SECRET


@pytest.mark.parametrize(
    ("new_url", "kept"),
    [
        ("https://evil.example/v1", False),
        ("http://127.0.0.1:1/v1", False),  # same address, another port: another server
        (None, True),  # the same URL
        ("PATH", True),  # the same server, another path
    ],
)
def test_moving_the_base_url_to_another_server_forgets_the_key(admin_client, provider, new_url, kept):
    base_url = provider.base_url if new_url is None else new_url
    if new_url == "PATH":
        base_url = provider.base_url.rstrip("/") + "/openai"
    response = admin_client.post(
        reverse("admin:personas_provider_change", args=[provider.pk]), _provider_data(base_url=base_url), follow=True
    )

    provider.refresh_from_db()
    assert (provider.api_key == "sk-test-secret-key-1234") is kept
    assert ("stored API key was removed" in response.content.decode()) is not kept


def test_a_new_key_entered_with_the_new_server_is_kept(admin_client, provider):
    admin_client.post(
        reverse("admin:personas_provider_change", args=[provider.pk]),
        _provider_data(base_url="https://api.other.example/v1", api_key=SECRET),
    )

    provider.refresh_from_db()
    assert provider.api_key == SECRET


def test_clear_key_removes_the_key(admin_client, provider):
    admin_client.post(
        reverse("admin:personas_provider_change", args=[provider.pk]),
        _provider_data(base_url=provider.base_url, clear_api_key="on"),
    )

    provider.refresh_from_db()
    assert provider.api_key_encrypted == ""


def test_new_key_and_clear_together_are_refused(admin_client, provider):
    response = admin_client.post(
        reverse("admin:personas_provider_change", args=[provider.pk]),
        _provider_data(base_url=provider.base_url, api_key=SECRET, clear_api_key="on"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors()
    provider.refresh_from_db()
    assert provider.api_key == "sk-test-secret-key-1234"


def test_change_page_survives_a_key_that_no_longer_decrypts(admin_client, provider):
    _store_undecryptable_key(provider)

    response = admin_client.get(reverse("admin:personas_provider_change", args=[provider.pk]))

    assert response.status_code == 200
    assert "cannot be decrypted" in response.content.decode()


# -- provider actions ----------------------------------------------------------------------


def _run_action(admin_client, action: str, provider: Provider):
    return admin_client.post(
        reverse("admin:personas_provider_changelist"),
        {"action": action, "_selected_action": [provider.pk]},
        follow=True,
    )


def test_fetch_models_action_reports_the_new_disabled_models(admin_client, provider):
    response = _run_action(admin_client, "fetch_models", provider)

    assert response.status_code == 200
    assert _messages(response) == [
        ("success", "Fake upstream: 3 new models added (disabled): fake-echo, fake-long, gpt-4o-mini")
    ]
    assert ChatModel.objects.filter(provider=provider, enabled=False).count() == 3


def test_fetch_models_action_says_when_nothing_is_new(admin_client, provider):
    _run_action(admin_client, "fetch_models", provider)

    response = _run_action(admin_client, "fetch_models", provider)

    assert _messages(response) == [("info", "Fake upstream: no new models.")]


def test_fetch_models_action_shows_the_upstream_error(admin_client, provider, upstream):
    upstream.api_key = "other"

    response = _run_action(admin_client, "fetch_models", provider)

    [(level, text)] = _messages(response)
    assert level == "error"
    assert "refused the API key (401)" in text
    assert "sk-test-secret-key-1234" not in response.content.decode()
    assert not ChatModel.objects.exists()


def test_test_connection_action_reports_success(admin_client, provider, upstream):
    ChatModel.objects.create(provider=provider, model_id="fake-echo", enabled=True)

    response = _run_action(admin_client, "test_connection", provider)

    assert _messages(response) == [("success", "Fake upstream answered with model “fake-echo”.")]
    assert upstream.requests[-1].body["max_tokens"] == 1


def test_test_connection_action_shows_the_upstream_error(admin_client, provider):
    ChatModel.objects.create(provider=provider, model_id="status:503", enabled=True)

    response = _run_action(admin_client, "test_connection", provider)

    [(level, text)] = _messages(response)
    assert level == "error"
    assert text.startswith("Fake upstream: ")
    assert "(503)" in text


def test_actions_report_a_key_that_no_longer_decrypts(admin_client, provider):
    _store_undecryptable_key(provider)

    response = _run_action(admin_client, "test_connection", provider)

    [(level, text)] = _messages(response)
    assert level == "error"
    assert "cannot be decrypted" in text


# -- chat model actions ---------------------------------------------------------------------


def test_enable_and_disable_actions_change_the_allow_list(admin_client, provider):
    model = ChatModel.objects.create(provider=provider, model_id="fake-echo")
    url = reverse("admin:personas_chatmodel_changelist")

    response = admin_client.post(url, {"action": "enable_models", "_selected_action": [model.pk]}, follow=True)
    model.refresh_from_db()
    assert model.enabled
    assert _messages(response) == [("info", "1 model enabled.")]

    admin_client.post(url, {"action": "disable_models", "_selected_action": [model.pk]})
    model.refresh_from_db()
    assert not model.enabled


# -- persona form --------------------------------------------------------------------------------


def test_persona_form_offers_only_enabled_models(admin_client, provider):
    enabled = ChatModel.objects.create(provider=provider, model_id="fake-echo", enabled=True)
    ChatModel.objects.create(provider=provider, model_id="hidden-disabled-model", enabled=False)

    response = admin_client.get(reverse("admin:personas_persona_add"))

    field = response.context["adminform"].form.fields["model"]
    assert list(field.queryset) == [enabled]
    html = response.content.decode()
    assert "fake-echo (Fake upstream)" in html
    assert "hidden-disabled-model" not in html


def test_persona_form_refuses_a_disabled_model(admin_client, provider):
    disabled = ChatModel.objects.create(provider=provider, model_id="fake-echo", enabled=False)

    response = admin_client.post(
        reverse("admin:personas_persona_add"),
        {"name": "Pirate", "slug": "pirate", "avatar": "🏴", "model": disabled.pk, "history_limit": 10},
    )

    assert response.status_code == 200
    assert "model" in response.context["adminform"].form.errors
    assert not Persona.objects.exists()


def test_adding_a_persona_through_the_admin_saves_it(admin_client, provider):
    model = ChatModel.objects.create(provider=provider, model_id="fake-echo", enabled=True)

    response = admin_client.post(
        reverse("admin:personas_persona_add"),
        {
            "name": "Pirate",
            "slug": "pirate",
            "avatar": "🏴",
            "model": model.pk,
            "system_prompt": "Talk like a pirate.",
            "history_limit": 10,
            "is_active": "on",
        },
    )

    assert response.status_code == 302
    persona = Persona.objects.get(slug="pirate")
    assert (persona.model, persona.is_active, persona.system_prompt) == (model, True, "Talk like a pirate.")
