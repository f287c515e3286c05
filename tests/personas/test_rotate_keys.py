"""`manage.py rotate_provider_keys`: after it, the old secret key can leave DJANGO_SECRET_KEY_FALLBACKS."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from personas import crypto
from personas.models import Provider

pytestmark = pytest.mark.django_db

OLD_SECRET = "the-old-secret-key-that-is-being-retired-0123456789abcdef"
NEW_SECRET = "the-new-secret-key-that-replaces-it-now-9876543210fedcba"
LOST_SECRET = "a-secret-key-nobody-configured-any-more-5555555555555555"


def _provider(name: str, api_key: str, *, secret: str) -> Provider:
    with override_settings(SECRET_KEY=secret, SECRET_KEY_FALLBACKS=[]):
        token = crypto.encrypt(api_key) if api_key else ""
    return Provider.objects.create(name=name, base_url="http://127.0.0.1:1/v1", api_key_encrypted=token)


def _rotate() -> str:
    out = StringIO()
    call_command("rotate_provider_keys", stdout=out)
    return out.getvalue()


def _key_without_fallbacks(provider: Provider) -> str:
    provider.refresh_from_db()
    with override_settings(SECRET_KEY=NEW_SECRET, SECRET_KEY_FALLBACKS=[]):
        return provider.api_key


def test_rotated_keys_decrypt_without_the_old_secret(settings):
    openai = _provider("OpenAI", "sk-openai-key-000111", secret=OLD_SECRET)
    groq = _provider("Groq", "gsk-groq-key-222333", secret=OLD_SECRET)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_SECRET, [OLD_SECRET]
    with pytest.raises(crypto.DecryptionError):
        _key_without_fallbacks(openai)  # Before: only the fallback reads it.

    output = _rotate()

    assert "2 provider keys re-encrypted" in output
    assert _key_without_fallbacks(openai) == "sk-openai-key-000111"
    assert _key_without_fallbacks(groq) == "gsk-groq-key-222333"


def test_providers_without_a_key_are_left_alone_and_not_counted(settings):
    _provider("OpenAI", "sk-openai-key-000111", secret=OLD_SECRET)
    ollama = _provider("Ollama", "", secret=OLD_SECRET)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_SECRET, [OLD_SECRET]

    output = _rotate()

    assert "1 provider key re-encrypted" in output
    ollama.refresh_from_db()
    assert ollama.api_key_encrypted == ""


def test_keys_already_under_the_current_secret_stay_readable(settings):
    provider = _provider("OpenAI", "sk-openai-key-000111", secret=NEW_SECRET)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_SECRET, []

    _rotate()

    assert _key_without_fallbacks(provider) == "sk-openai-key-000111"


def test_a_key_no_secret_decrypts_fails_the_command_naming_its_provider(settings):
    lost = _provider("Lost provider", "sk-lost-key-444555", secret=LOST_SECRET)
    kept = _provider("Kept provider", "sk-kept-key-666777", secret=OLD_SECRET)
    lost_token = lost.api_key_encrypted
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_SECRET, [OLD_SECRET]

    with pytest.raises(CommandError, match=r"“Lost provider”.*DJANGO_SECRET_KEY_FALLBACKS"):
        _rotate()

    lost.refresh_from_db()
    assert lost.api_key_encrypted == lost_token  # Untouched: still readable should its secret come back.
    assert _key_without_fallbacks(kept) == "sk-kept-key-666777"


def test_the_command_never_prints_a_key(settings, capsys):
    _provider("OpenAI", "sk-openai-key-000111", secret=OLD_SECRET)
    _provider("Lost provider", "sk-lost-key-444555", secret=LOST_SECRET)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_SECRET, [OLD_SECRET]

    out = StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("rotate_provider_keys", stdout=out, stderr=out)

    printed = out.getvalue() + str(failure.value) + capsys.readouterr().out
    assert "sk-openai-key-000111" not in printed and "sk-lost-key-444555" not in printed
