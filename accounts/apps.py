from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from accounts.theme import remember_theme_on_login

        user_logged_in.connect(remember_theme_on_login, dispatch_uid="accounts.theme")
