from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = _("Conversations")

    def ready(self) -> None:
        from conversations import serving, signals

        signals.connect()
        if serving.serves_site():
            from llm import tokens

            tokens.encodings_load()  # Before the first send, which counts its message's tokens.
            serving.at_start(serving.startup_objects_freeze)
