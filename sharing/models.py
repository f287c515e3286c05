from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class SharedConversation(models.Model):
    """A conversation shared read-only at /s/<token>/, as it was when shared (or last re-shared).

    `message_ids` are the primary keys of the shown messages at that moment,
    oldest first: later messages, and versions shown later, stay private
    until the owner shares again. Revoking deletes the row, and the link
    answers 404. One link per conversation; sharing again keeps its token.
    """

    token = models.CharField(max_length=64, unique=True, editable=False)
    conversation = models.OneToOneField(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="share", verbose_name=_("conversation")
    )
    message_ids = models.JSONField(default=list, editable=False)
    title = models.CharField(_("title"), max_length=200, blank=True)
    show_owner = models.BooleanField(_("show my name"), default=False)
    shared_at = models.DateTimeField(_("shared at"))

    class Meta:
        verbose_name = _("shared conversation")
        verbose_name_plural = _("shared conversations")

    def __str__(self) -> str:
        return self.title or self.token[:8]

    def get_absolute_url(self) -> str:
        return reverse("sharing:shared-detail", kwargs={"token": self.token})
