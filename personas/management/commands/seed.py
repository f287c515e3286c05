"""`manage.py seed`: create the provider, model and persona named by OPENAI_* variables."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from personas.services import defaults_seed_from_env


class Command(BaseCommand):
    help = (
        "Create a provider, an enabled model and a default persona from OPENAI_API_KEY, "
        "OPENAI_BASE_URL, OPENAI_MODEL and OPENAI_MODEL_LABEL. Safe to run on every start."
    )

    def handle(self, *args, **options) -> None:
        try:
            result = defaults_seed_from_env()
        except ValidationError as exc:
            message = _("OPENAI_BASE_URL is invalid: %(errors)s") % {"errors": "; ".join(exc.messages)}
            raise CommandError(message) from exc
        # Without a key nothing is made; with one, all three are found or made.
        if result.provider is None or result.chat_model is None or result.persona is None:
            self.stdout.write(_("Nothing to seed: OPENAI_API_KEY is not set."))
            return
        rows = [
            (_("Provider"), f"{result.provider} ({result.provider.base_url})", result.provider_created),
            (_("Model"), result.chat_model.model_id, result.chat_model_created),
            (_("Persona"), f"{result.persona} ({result.persona.slug})", result.persona_created),
        ]
        for kind, label, created in rows:
            state = self.style.SUCCESS(_("created")) if created else _("found")
            self.stdout.write(f"{kind} {label}: {state}")
        if not result.chat_model.enabled:
            self.stdout.write(self.style.WARNING(_("The model is disabled; enable it in the admin to chat with it.")))
        if result.key_updated:
            self.stdout.write(_("The provider's API key was updated from OPENAI_API_KEY."))
