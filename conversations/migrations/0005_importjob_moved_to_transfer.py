"""ImportJob now belongs to the transfer app (transfer/migrations/0001); its table stays."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0004_message_heartbeat"),
        ("transfer", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ImportJob")],
            database_operations=[],
        ),
    ]
