"""Rename ImportJob's table from conversations_importjob to this app's name.

A plain AlterModelTable is not enough: on a fresh database Django's state
already resolves the table to the new name when 0002 runs and renames
nothing, so the rename is done explicitly, and only when the old table is there.
"""

from django.db import migrations

OLD_TABLE = "conversations_importjob"
NEW_TABLE = "transfer_importjob"


def rename_table(apps, schema_editor):
    if OLD_TABLE in schema_editor.connection.introspection.table_names():
        schema_editor.alter_db_table(apps.get_model("transfer", "ImportJob"), OLD_TABLE, NEW_TABLE)


def restore_table(apps, schema_editor):
    if NEW_TABLE in schema_editor.connection.introspection.table_names():
        schema_editor.alter_db_table(apps.get_model("transfer", "ImportJob"), NEW_TABLE, OLD_TABLE)


class Migration(migrations.Migration):
    dependencies = [
        ("transfer", "0001_initial"),
        ("conversations", "0005_importjob_moved_to_transfer"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AlterModelTable(name="importjob", table=None)],
            database_operations=[migrations.RunPython(rename_table, restore_table)],
        ),
    ]
