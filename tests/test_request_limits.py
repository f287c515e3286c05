"""Oversized form posts are refused before any view runs (DATA_UPLOAD_MAX_MEMORY_SIZE, _MAX_NUMBER_FIELDS)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from conversations import generation
from conversations.models import Conversation
from transfer import jobs as import_jobs
from transfer.models import ImportJob

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def test_a_form_post_over_a_megabyte_is_refused_and_nothing_is_saved(client, alice, persona):
    client.force_login(alice)

    response = client.post(
        reverse("conversations:conversation-create"), {"persona": persona.slug, "padding": "x" * (MB + MB // 2)}
    )

    assert response.status_code == 400
    assert not Conversation.objects.exists()


def test_a_form_post_with_too_many_fields_is_refused_and_nothing_is_saved(client, alice, persona):
    client.force_login(alice)
    fields = {f"field-{n}": "x" for n in range(600)}

    response = client.post(reverse("conversations:conversation-create"), {"persona": persona.slug, **fields})

    assert response.status_code == 400
    assert not Conversation.objects.exists()


def test_a_form_post_under_the_limits_is_taken(client, alice, persona, monkeypatch):
    started = []
    monkeypatch.setattr(generation, "start_reply", started.append)  # No event loop outlives this request.
    client.force_login(alice)

    response = client.post(
        reverse("conversations:conversation-create"),
        {"persona": persona.slug, "message": "hi", "padding": "x" * (MB // 2)},
    )

    assert response.status_code == 302
    assert Conversation.objects.filter(owner=alice).count() == 1 and len(started) == 1


def test_an_uploaded_file_over_the_form_limit_is_still_taken(client, alice, settings, tmp_path, monkeypatch):
    # File data does not count towards DATA_UPLOAD_MAX_MEMORY_SIZE: imports have CHAT_IMPORT_MAX_BYTES.
    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(import_jobs, "start_import_thread", lambda job_id: None)
    client.force_login(alice)
    content = b'{"padding": "' + b"x" * (3 * MB) + b'"}'

    response = client.post(
        reverse("transfer:import-create"),
        {"file": SimpleUploadedFile("conversations.json", content, content_type="application/json")},
    )

    assert response.status_code == 302
    assert ImportJob.objects.get(owner=alice).size_bytes == len(content)
