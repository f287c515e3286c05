"""ImportJob moves here from the conversations app: its table is kept, only Django's state moves.

The table is renamed to this app's name in 0002. Django's documented way to
move a model between apps (SeparateDatabaseAndState).
"""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("conversations", "0004_message_heartbeat"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ImportJob",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("public_id", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                        ("source", models.FileField(upload_to="imports/%Y/%m/")),
                        ("filename", models.CharField(max_length=255)),
                        ("size_bytes", models.PositiveBigIntegerField(default=0)),
                        (
                            "format",
                            models.CharField(
                                blank=True,
                                choices=[("site", "this site's JSON export"), ("chatgpt", "ChatGPT conversations.json")],
                                max_length=16,
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "waiting"),
                                    ("running", "importing"),
                                    ("done", "done"),
                                    ("failed", "failed"),
                                ],
                                default="pending",
                                max_length=16,
                            ),
                        ),
                        ("total", models.PositiveIntegerField(default=0)),
                        ("done", models.PositiveIntegerField(default=0)),
                        ("error_text", models.TextField(blank=True)),
                        (
                            "notes",
                            models.TextField(blank=True, help_text="What could not be imported as text, e.g. images."),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "owner",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="import_jobs",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"ordering": ["-created_at"], "db_table": "conversations_importjob"},
                ),
            ],
            database_operations=[],
        ),
    ]
