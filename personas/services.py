"""Writes of providers, chat models and personas, and the calls that check a provider.

Network calls (`provider_fetch_models`, `provider_test`) run before any
transaction opens, so no database lock is held while a provider answers.
"""

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

import llm
from personas import addresses, crypto
from personas.models import ChatModel, Persona, Provider
from personas.selectors import provider_upstream_config

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL_ID = "gpt-4o-mini"
DEFAULT_PERSONA_SLUG = "assistant"


@dataclass(frozen=True)
class SeedResult:
    """What `defaults_seed_from_env` found or made; all None when the environment holds no key."""

    provider: Provider | None = None
    chat_model: ChatModel | None = None
    persona: Persona | None = None
    provider_created: bool = False
    chat_model_created: bool = False
    persona_created: bool = False
    key_updated: bool = False


@sensitive_variables("api_key")
def provider_set_api_key(*, provider: Provider, api_key: str) -> Provider:
    """Store `api_key` encrypted on `provider`; an empty string clears the key.

    Returns the saved provider.
    """
    provider.api_key_encrypted = crypto.encrypt(api_key) if api_key else ""
    provider.save(update_fields=["api_key_encrypted", "updated_at"])
    return provider


def provider_key_forget_on_new_host(*, provider: Provider, previous_base_url: str) -> bool:
    """Clear `provider`'s stored key if its base URL now names another host or port; return whether it did.

    A key belongs to the server it was issued for: after the base URL moves
    elsewhere, "Test connection" or a reply would otherwise send it to the new
    host. The path may change freely (/v1 to /openai/v1).
    """
    if not provider.api_key_encrypted or _host(provider.base_url) == _host(previous_base_url):
        return False
    provider_set_api_key(provider=provider, api_key="")
    return True


def _host(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # An unparseable port: only the host name counts.
        port = None
    return (parts.hostname or "", port or {"http": 80, "https": 443}.get(parts.scheme))


def provider_fetch_models(*, provider: Provider) -> list[ChatModel]:
    """Add the provider's models (GET {base_url}/models) that are not yet known, disabled.

    Disabled rows keep them off the allow-list until an admin enables them.
    A new row's display name is the provider's label for the model (the
    `display_name` or `name` of its entry in the list), else its id. Known rows
    stay as they are, except that a display name nobody edited (empty, or the
    id) takes the provider's label when it lists one.
    Returns the created rows, in the provider's order.

    Raises:
        llm.LLMError: the provider could not be reached or refused the call.
        crypto.DecryptionError: the stored API key cannot be decrypted.
    """
    listed = async_to_sync(llm.list_models)(provider_upstream_config(provider=provider))
    max_length = ChatModel._meta.get_field("display_name").max_length
    labels = {model_id: (label or model_id)[:max_length] for model_id, label in listed.items() if model_id}
    with transaction.atomic():
        known = {model.model_id: model for model in provider.models.all()}
        relabelled = []
        for model_id, model in known.items():
            unedited = model.display_name in ("", model_id)
            if listed.get(model_id) and unedited and model.display_name != labels[model_id]:
                model.display_name = labels[model_id]
                relabelled.append(model)
        ChatModel.objects.bulk_update(relabelled, ["display_name"])
        return ChatModel.objects.bulk_create(
            [
                ChatModel(provider=provider, model_id=model_id, display_name=label, enabled=False)
                for model_id, label in labels.items()
                if model_id not in known
            ]
        )


def provider_test(*, provider: Provider, model_id: str | None = None) -> str:
    """Check that `provider` answers: a one-token completion of "ping"; return a success sentence.

    The model is `model_id` when given, else the provider's first enabled
    model, else its first model; a provider with no models at all is tested
    by listing its models instead.

    Raises:
        llm.LLMError: the provider's failure, with its message unchanged.
        crypto.DecryptionError: the stored API key cannot be decrypted.
    """
    config = provider_upstream_config(provider=provider)
    if model_id is None:
        model = provider.models.order_by("-enabled", "model_id").first()
        model_id = model.model_id if model else None
    if model_id is None:
        count = len(async_to_sync(llm.list_models)(config))
        return _("%(provider)s answered: it lists %(count)d models.") % {"provider": provider.name, "count": count}
    request = llm.ChatRequest(model=model_id, messages=[{"role": "user", "content": "ping"}], max_tokens=1)
    async_to_sync(llm.complete_once)(config, request)
    return _("%(provider)s answered with model “%(model)s”.") % {"provider": provider.name, "model": model_id}


def chat_models_set_enabled(*, chat_models: QuerySet[ChatModel], enabled: bool) -> int:
    """Put `chat_models` on (`enabled`) or off the allow-list; return how many rows changed."""
    return chat_models.exclude(enabled=enabled).update(enabled=enabled)


@transaction.atomic
@sensitive_variables("api_key", "environ")
def defaults_seed_from_env(*, environ: Mapping[str, str] = os.environ) -> SeedResult:
    """Make sure a provider, an enabled model and a default persona exist for OPENAI_API_KEY.

    Reads OPENAI_API_KEY (nothing happens without it), OPENAI_BASE_URL
    (default https://api.openai.com/v1), OPENAI_MODEL (default gpt-4o-mini)
    and OPENAI_MODEL_LABEL (the model's display name). Idempotent: rows are
    found by base URL, model id and the slug "assistant"; found rows keep
    their admin edits, except that the stored key follows the environment's.

    Raises:
        django.core.exceptions.ValidationError: OPENAI_BASE_URL is not an http(s) URL.
    """
    api_key = environ.get("OPENAI_API_KEY", "").strip()
    if not api_key:
        return SeedResult()
    base_url = (environ.get("OPENAI_BASE_URL", "").strip() or DEFAULT_BASE_URL).rstrip("/")
    model_id = environ.get("OPENAI_MODEL", "").strip() or DEFAULT_MODEL_ID
    label = environ.get("OPENAI_MODEL_LABEL", "").strip()

    provider, provider_created = _provider_for(base_url)
    key_updated = False
    if provider_created or _stored_key(provider) != api_key:
        provider_set_api_key(provider=provider, api_key=api_key)
        key_updated = not provider_created
    chat_model, chat_model_created = ChatModel.objects.get_or_create(
        provider=provider, model_id=model_id, defaults={"enabled": True, "display_name": label}
    )
    persona, persona_created = Persona.objects.get_or_create(
        slug=DEFAULT_PERSONA_SLUG,
        defaults={
            "name": _("Assistant"),
            "avatar": "🤖",
            "description": _("A helpful general-purpose assistant."),
            "greeting": _("Hello! How can I help you today?"),
            "system_prompt": _(
                "You are a helpful, friendly assistant. Answer clearly and concisely, "
                "use Markdown where it helps, and say so when you are not sure."
            ),
            "model": chat_model,
            "is_active": True,
        },
    )
    return SeedResult(
        provider=provider,
        chat_model=chat_model,
        persona=persona,
        provider_created=provider_created,
        chat_model_created=chat_model_created,
        persona_created=persona_created,
        key_updated=key_updated,
    )


def _provider_for(base_url: str) -> tuple[Provider, bool]:
    """Return the provider at `base_url` (with or without a trailing slash) and whether it was created."""
    existing = Provider.objects.filter(base_url__in=[base_url, base_url + "/"]).order_by("pk").first()
    if existing is not None:
        return existing, False
    parts = urlsplit(base_url)
    host = parts.hostname or base_url  # never netloc: it may carry user:password@
    name = "OpenAI" if host == "api.openai.com" else (f"{host}:{parts.port}" if parts.port else host)[:90]
    candidate, n = name, 2
    while Provider.objects.filter(name=candidate).exists():
        candidate, n = f"{name} ({n})", n + 1
    provider = Provider(
        name=candidate, base_url=base_url, is_local=addresses.host_kind(base_url) == addresses.HostKind.LOCAL
    )
    provider.full_clean()
    provider.save()
    return provider, True


def _stored_key(provider: Provider) -> str | None:
    """Return the provider's decrypted key, or None when it cannot be decrypted."""
    try:
        return provider.api_key
    except crypto.DecryptionError:
        return None


@dataclass(frozen=True)
class KeyRotation:
    """What `provider_keys_rotate` did: how many keys it re-encrypted, and the providers it could not."""

    rotated: int
    undecryptable: list[Provider]


def provider_keys_rotate() -> KeyRotation:
    """Re-encrypt every stored provider API key with the current SECRET_KEY.

    A key that only a key of SECRET_KEY_FALLBACKS decrypts is re-encrypted
    (MultiFernet.rotate), so the fallback can then be removed. Each provider
    is rewritten on its own, under a row lock, so a key saved in the admin
    meanwhile is not overwritten with an older one; keys that no configured
    secret decrypts are left as they are and returned.
    """
    rotated, undecryptable = 0, []
    for pk in Provider.objects.exclude(api_key_encrypted="").order_by("name").values_list("pk", flat=True):
        with transaction.atomic():
            provider = Provider.objects.select_for_update().get(pk=pk)
            if not provider.api_key_encrypted:
                continue
            try:
                token = crypto.rotate(provider.api_key_encrypted)
            except crypto.DecryptionError:
                undecryptable.append(provider)
                continue
            Provider.objects.filter(pk=pk).update(api_key_encrypted=token)
            rotated += 1
    return KeyRotation(rotated=rotated, undecryptable=undecryptable)


def persona_save_own(*, persona: Persona, owner: User) -> Persona:
    """Save a user's own persona from `OwnPersonaForm` (new or edited): private, active, with a random slug.

    Publishing to everyone stays the admin's (`is_published`): an edit of a
    published persona unpublishes it, since the admin did not review the new
    text; the admin publishes it again.
    """
    persona.owner = owner
    persona.is_published = False
    if not persona.slug:
        persona.slug = f"u-{secrets.token_hex(8)}"
    persona.full_clean()
    persona.save()
    return persona


def persona_delete_own(*, persona: Persona) -> None:
    """Delete a user's own persona; its chats stay readable (their persona becomes empty) but get no new reply.

    Raises:
        ValueError: `persona` is a site persona.
    """
    if persona.owner_id is None:
        raise ValueError("Site personas are deleted in the admin")
    persona.delete()
