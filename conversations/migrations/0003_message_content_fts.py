"""A GIN index for full-text search of message text, on PostgreSQL only.

The index expression is built by Django from the same `SearchVector` that
`conversations.search` queries with, `to_tsvector('simple'::regconfig,
COALESCE(content, ''))`, so the planner can use it. SQLite has no such
index type; search there scans with LIKE. The index is not declared on the
model because SQLite could not create it; migration state does not track it.

Built CONCURRENTLY, so a site with many messages keeps accepting new ones
while it builds (hence `atomic = False`).
"""

from django.db import migrations

INDEX_NAME = "message_content_fts"


def _index():
    from django.contrib.postgres.indexes import GinIndex
    from django.contrib.postgres.search import SearchVector

    return GinIndex(SearchVector("content", config="simple"), name=INDEX_NAME)


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.add_index(apps.get_model("conversations", "Message"), _index(), concurrently=True)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.remove_index(apps.get_model("conversations", "Message"), _index(), concurrently=True)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("conversations", "0002_versions_titles_imports"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
