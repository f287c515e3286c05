"""ImportJob moved from the conversations app to transfer: its rows survive the move, both ways."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from transfer.models import ImportJob

BEFORE = [("conversations", "0004_message_heartbeat"), ("transfer", None)]


def migrate(targets):
    """Migrate to `targets`; return the apps of the state there (an app at None has no nodes)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


@pytest.mark.django_db(transaction=True)
def test_import_jobs_keep_their_rows_when_the_model_moves_to_transfer():
    old_apps = migrate(BEFORE)
    user = old_apps.get_model("auth", "User").objects.create(username="before-the-move")
    old_apps.get_model("conversations", "ImportJob").objects.create(
        owner_id=user.pk, source="imports/a.json", filename="a.json", total=3
    )

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    job = ImportJob.objects.get()
    assert (job.filename, job.total, job.owner.username) == ("a.json", 3, "before-the-move")
    assert "transfer_importjob" in connection.introspection.table_names()
    assert "conversations_importjob" not in connection.introspection.table_names()
