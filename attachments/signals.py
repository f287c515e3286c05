"""The receiver that deletes an attachment's file with its row, however the row goes."""

from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver

from attachments import services
from attachments.models import Attachment


@receiver(post_delete, sender=Attachment, dispatch_uid="attachment_file_delete")
def attachment_deleted(sender: type[Attachment], instance: Attachment, using: str, **kwargs: Any) -> None:
    """Delete the row's file after the commit (`services.file_delete_when_unused`): cascades send this too."""
    services.file_delete_when_unused(name=instance.file.name, using=using)
