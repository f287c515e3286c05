"""Imports run in a worker that survives restarts: a heartbeat, a claim counter, one unfinished import per user.

Jobs still waiting or running when this migration runs were started by the
old per-upload threads, which wrote a whole import in one transaction and
die with their process: nothing of theirs was imported and nothing will
resume them, so they are marked failed (as the pages already showed them
after an hour). Their uploads are deleted by the worker's first sweep
(`transfer.jobs.import_uploads_sweep`). That also makes the new constraint
hold for existing rows.
"""

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

OLD_JOB_STOPPED = "This import stopped when the site was updated; nothing was imported. Upload the file again."


def unfinished_jobs_fail(apps, schema_editor):
    ImportJob = apps.get_model("transfer", "ImportJob")
    ImportJob.objects.filter(status__in=["pending", "running"]).update(
        status="failed", done=0, error_text=OLD_JOB_STOPPED, finished_at=timezone.now()
    )


class Migration(migrations.Migration):
    dependencies = [
        ("transfer", "0002_importjob_table"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="attempts",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="How many times a worker took the job up; a worker's writes check it is still theirs.",
            ),
        ),
        migrations.AddField(
            model_name="importjob",
            name="heartbeat_at",
            field=models.DateTimeField(
                blank=True,
                help_text="Last sign of life of the worker running the job; an old one means its process died.",
                null=True,
            ),
        ),
        migrations.RunPython(unfinished_jobs_fail, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="importjob",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status__in", ["pending", "running"])),
                fields=("owner",),
                name="transfer_importjob_one_unfinished_per_owner",
            ),
        ),
    ]
