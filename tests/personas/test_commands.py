from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from personas.models import ChatModel, Persona, Provider

pytestmark = pytest.mark.django_db

KEY = "sk-command-secret-key-24680"


@pytest.fixture
def openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_MODEL_LABEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1")
    monkeypatch.setenv("OPENAI_MODEL", "fake-echo")
    monkeypatch.setenv("OPENAI_MODEL_LABEL", "Offline demo (fake server)")
    return monkeypatch


def _seed() -> str:
    out = StringIO()
    call_command("seed", stdout=out)
    return out.getvalue()


def test_seed_creates_and_reports_provider_model_and_persona(openai_env):
    output = _seed()

    assert Provider.objects.get().base_url == "http://127.0.0.1:9999/v1"
    assert ChatModel.objects.get().display_name == "Offline demo (fake server)"
    assert Persona.objects.get().slug == "assistant"
    assert output.count("created") == 3
    assert "127.0.0.1:9999" in output and "fake-echo" in output and "assistant" in output


def test_seed_a_second_time_reports_what_it_found(openai_env):
    _seed()

    output = _seed()

    assert "created" not in output
    assert output.count("found") == 3
    assert (Provider.objects.count(), ChatModel.objects.count(), Persona.objects.count()) == (1, 1, 1)


def test_seed_never_prints_the_key(openai_env):
    output = _seed()
    openai_env.setenv("OPENAI_API_KEY", "sk-rotated-key-13579")
    output += _seed()

    assert KEY not in output and "sk-rotated-key-13579" not in output
    assert "13579" not in output and "24680" not in output
    assert "updated" in output


def test_seed_warns_when_the_model_is_disabled(openai_env):
    _seed()
    ChatModel.objects.update(enabled=False)

    assert "disabled" in _seed()


def test_seed_without_api_key_does_nothing(openai_env):
    openai_env.delenv("OPENAI_API_KEY")

    output = _seed()

    assert "OPENAI_API_KEY is not set" in output
    assert not Provider.objects.exists()


def test_seed_with_a_bad_base_url_fails_clearly(openai_env):
    openai_env.setenv("OPENAI_BASE_URL", "file:///etc/passwd")

    with pytest.raises(CommandError, match="OPENAI_BASE_URL"):
        _seed()

    assert not Provider.objects.exists()
