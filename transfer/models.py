import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class ImportJob(models.Model):
    """An upload of exported conversations, imported in the background with its progress."""

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting")
        RUNNING = "running", _("importing")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    class Format(models.TextChoices):
        SITE = "site", _("this site's JSON export")
        CHATGPT = "chatgpt", _("ChatGPT conversations.json")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="import_jobs")
    source = models.FileField(upload_to="imports/%Y/%m/")
    filename = models.CharField(max_length=255)
    size_bytes = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=16, choices=Format.choices, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    error_text = models.TextField(blank=True)
    notes = models.TextField(blank=True, help_text=_("What could not be imported as text, e.g. images."))
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("Last sign of life of the worker running the job; an old one means its process died."),
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text=_("How many times a worker took the job up; a worker's writes check it is still theirs.")
    )

    # Not a field: set by transfer.views for the templates (jobs.import_job_stalled), absent until then.
    stalled: bool

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One waiting or running import per user (transfer.jobs.import_job_create refuses a second one).
            models.UniqueConstraint(
                fields=["owner"],
                condition=Q(status__in=["pending", "running"]),
                name="transfer_importjob_one_unfinished_per_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0
