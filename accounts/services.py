from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction

from accounts.models import CustomInstructions, Preference


@transaction.atomic
def user_promote_if_first(*, user: AbstractUser) -> AbstractUser:
    """Make `user` staff and superuser when it is the only account of the site.

    A fresh site thus needs no `createsuperuser` step; every later sign-up
    stays an ordinary user. Returns the user, promoted or not.
    """
    User = get_user_model()
    # Lock the user table's rows so two simultaneous first sign-ups cannot both win.
    others = User.objects.select_for_update().exclude(pk=user.pk)
    if not others.exists():
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return user


@transaction.atomic
def preference_set_language(*, user: AbstractUser, language: str) -> Preference:
    """Save `user`'s interface language, kept across devices: a settings.LANGUAGES code, or "" to follow the browser.

    Raises:
        ValueError: `language` is neither "" nor one of settings.LANGUAGES' codes.
    """
    if language and language not in dict(settings.LANGUAGES):
        raise ValueError(f"Not a language of this site: {language!r}")
    preference, _created = Preference.objects.select_for_update().get_or_create(user=user)
    preference.language = language
    preference.save(update_fields=["language"])
    return preference


def custom_instructions_set(*, user: AbstractUser, about_me: str, reply_style: str) -> CustomInstructions:
    """Store `user`'s custom instructions (both blank clears them); texts are stripped, NUL replaced.

    The form checks each text's length (CustomInstructions.MAX_CHARS).
    """
    texts = {
        "about_me": about_me.replace("\x00", "\ufffd").strip(),
        "reply_style": reply_style.replace("\x00", "\ufffd").strip(),
    }
    instructions, _created = CustomInstructions.objects.update_or_create(user=user, defaults=texts)
    return instructions


@transaction.atomic
def preference_set_theme(*, user: AbstractUser, theme: str) -> Preference:
    """Save `user`'s colour theme, kept across devices: one of Preference.Theme's values.

    Raises:
        ValueError: `theme` is not one of Preference.Theme's values.
    """
    if theme not in Preference.Theme.values:
        raise ValueError(f"Not a theme: {theme!r}")
    preference, _created = Preference.objects.select_for_update().get_or_create(user=user)
    preference.theme = theme
    preference.save(update_fields=["theme"])
    return preference
