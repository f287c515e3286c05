"""`manage.py rotate_provider_keys`: re-encrypt stored provider API keys with the current secret key."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from personas.services import provider_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored provider API key with the current DJANGO_SECRET_KEY, so the old key "
        "can leave DJANGO_SECRET_KEY_FALLBACKS. Fails, naming them, on keys no configured secret decrypts."
    )

    def handle(self, *args, **options) -> None:
        result = provider_keys_rotate()
        self.stdout.write(
            ngettext(
                "%(count)d provider key re-encrypted with the current secret key.",
                "%(count)d provider keys re-encrypted with the current secret key.",
                result.rotated,
            )
            % {"count": result.rotated}
        )
        if result.undecryptable:
            names = ", ".join(f"“{provider.name}”" for provider in result.undecryptable)
            raise CommandError(
                _(
                    "No configured secret key decrypts the API key of %(providers)s: put the secret key it was "
                    "stored under in DJANGO_SECRET_KEY_FALLBACKS and run this again, or enter the key anew "
                    "in the admin (Providers)."
                )
                % {"providers": names}
            )
