"""Attachments travel with an "export all" ZIP: listed with their messages, their files in files/, and
restored by importing that ZIP (checked again like uploads)."""

import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from attachments import services as attachment_services
from attachments.models import Attachment, AttachmentPolicy
from conversations import services
from conversations.models import Message
from tests.attachments import files
from transfer import jobs
from transfer.importers import parse_export, zip_member_reader

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def with_files(alice, conversation):
    sent = services.message_send(conversation=conversation, text="Look at these")
    for name, data in (("cat.png", files.png_bytes(30, 20)), ("notes.md", b"# Quokka notes\n")):
        attachment = attachment_services.attachment_upload(owner=alice, upload=SimpleUploadedFile(name, data))
        Attachment.objects.filter(pk=attachment.pk).update(message=sent.user_message)
    return sent.user_message


def _export_all(client, user) -> bytes:
    client.force_login(user)
    response = client.get("/export/all.zip")
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_the_export_lists_attachments_with_their_message_and_holds_their_files(client, alice, with_files):
    archive = zipfile.ZipFile(io.BytesIO(_export_all(client, alice)))
    document = json.loads(archive.read("conversations.json"))

    message = next(m for m in document["conversations"][0]["messages"] if m["id"] == str(with_files.public_id))
    listed = message["attachments"]
    assert [(a["name"], a["kind"], a["content_type"]) for a in listed] == [
        ("cat.png", "image", "image/png"),
        ("notes.md", "document", "text/plain"),
    ]
    for record in listed:
        stored = Attachment.objects.get(public_id=record["id"])
        assert archive.read(record["file"]) == stored.file.read()
    assert archive.read(listed[1]["file"]) == b"# Quokka notes\n"


def test_importing_the_export_restores_the_files_for_the_importer(client, alice, bob, with_files):
    data = _export_all(client, alice)
    parsed = parse_export(data, max_bytes=10**8)
    refused = []

    jobs.conversations_import(
        owner=bob,
        conversations=parsed.conversations,
        files=zip_member_reader(data, max_bytes=10**8),
        on_file_refused=refused.append,
    )

    assert refused == []
    question = Message.objects.get(conversation__owner=bob, content="Look at these")
    restored = list(question.attachments.order_by("pk"))
    assert [(a.name, a.kind, a.owner) for a in restored] == [("cat.png", "image", bob), ("notes.md", "document", bob)]
    assert restored[1].text == "# Quokka notes\n"
    assert restored[1].file.read() == b"# Quokka notes\n"
    assert restored[0].file.name != Attachment.objects.get(owner=alice, name="cat.png").file.name


def test_a_file_missing_or_refused_on_import_is_noted_and_the_rest_imported(client, alice, bob, with_files):
    data = _export_all(client, alice)
    parsed = parse_export(data, max_bytes=10**8)
    AttachmentPolicy.objects.create(images_allowed=False)
    refused = []

    jobs.conversations_import(
        owner=bob,
        conversations=parsed.conversations,
        files=zip_member_reader(data, max_bytes=10**8),
        on_file_refused=refused.append,
    )

    assert len(refused) == 1 and "cat.png" in refused[0] and "Images are not accepted" in refused[0]
    assert list(Attachment.objects.filter(owner=bob).values_list("name", flat=True)) == ["notes.md"]
