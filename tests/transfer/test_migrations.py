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


@pytest.mark.django_db(transaction=True)
def test_imports_left_unfinished_by_the_old_threads_are_failed_by_the_worker_migration():
    old_apps = migrate([("transfer", "0002_importjob_table")])
    user = old_apps.get_model("auth", "User").objects.create(username="two-tabs")
    OldJob = old_apps.get_model("transfer", "ImportJob")
    for status in ["pending", "running", "running", "done"]:
        OldJob.objects.create(owner_id=user.pk, source=f"imports/{status}.json", status=status, done=25)

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    # The old threads died with their process and wrote all or nothing: nothing was imported, nothing resumes.
    jobs = list(ImportJob.objects.order_by("pk").values_list("status", "done", "error_text"))
    stopped = (
        "failed",
        0,
        "This import stopped when the site was updated; nothing was imported. Upload the file again.",
    )
    assert jobs == [stopped, stopped, stopped, ("done", 25, "")]
