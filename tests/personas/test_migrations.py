"""Providers saved before the local flag existed keep working after the migration that adds it."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from personas.models import Provider
from tests.transfer.test_migrations import migrate


@pytest.mark.django_db(transaction=True)
def test_providers_on_loopback_or_private_addresses_are_marked_local():
    old_apps = migrate([("personas", "0001_initial")])
    OldProvider = old_apps.get_model("personas", "Provider")
    OldProvider.objects.create(name="Ollama", base_url="http://127.0.0.1:11434/v1")
    OldProvider.objects.create(name="vLLM", base_url="http://10.0.0.5:8000/v1")
    OldProvider.objects.create(name="OpenAI", base_url="https://api.openai.com/v1")

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert dict(Provider.objects.values_list("name", "is_local")) == {"Ollama": True, "vLLM": True, "OpenAI": False}
