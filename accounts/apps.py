from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    # Not "Accounts": allauth's own app (email addresses) has that label in the admin.
    verbose_name = _("Usage limits and preferences")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from accounts import locale

        user_logged_in.connect(locale.remember_language_on_login, dispatch_uid="accounts.remember_language")
        from accounts.theme import remember_theme_on_login

        user_logged_in.connect(remember_theme_on_login, dispatch_uid="accounts.theme")
