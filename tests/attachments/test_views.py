"""Uploading, fetching and removing attachments: only their owner ever gets them; limits come from the admin."""

import uuid
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from attachments.models import Attachment, AttachmentPolicy
from conversations import services
from tests.attachments import files

pytestmark = pytest.mark.django_db


def _upload(client, name: str, data: bytes):
    return client.post("/files/", {"file": SimpleUploadedFile(name, data)})


def test_an_image_is_uploaded_and_served_to_its_owner_only(client, alice, bob):
    client.force_login(alice)
    response = _upload(client, "photo.jpg", files.jpeg_bytes(3000, 1500))
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["content_type"], body["name"]) == ("image", "image/jpeg", "photo.jpg")
    attachment = Attachment.objects.get(public_id=body["id"])
    assert (attachment.width, attachment.height) == (2048, 1024)  # scaled to the policy's longest side
    assert attachment.message is None

    owner = client.get(body["url"])
    assert owner.status_code == 200 and owner["Content-Type"] == "image/jpeg"
    assert b"".join(owner.streaming_content).startswith(b"\xff\xd8\xff")

    client.force_login(bob)
    assert client.get(body["url"]).status_code == 404
    client.logout()
    assert client.get(body["url"]).status_code == 302  # to the sign-in page


def test_a_document_is_downloaded_not_shown_inline(client, alice):
    client.force_login(alice)
    body = _upload(client, "notes.md", b"# Notes\n\nQuokkas.").json()

    response = client.get(body["url"])

    assert response["Content-Type"] == "text/plain"
    assert response["Content-Disposition"].startswith("attachment;")


def test_an_upload_removed_from_the_composer_is_deleted_with_its_file(
    client, alice, bob, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    body = _upload(client, "a.txt", b"text").json()
    path = Path(Attachment.objects.get(public_id=body["id"]).file.path)
    client.force_login(bob)
    assert client.post(body["url"] + "remove/").status_code == 404
    client.force_login(alice)

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(body["url"] + "remove/").status_code == 204

    assert not Attachment.objects.exists()
    assert not path.exists()


def test_a_users_storage_limit_refuses_the_file_that_would_pass_it(client, alice, bob):
    AttachmentPolicy.objects.create(max_user_storage_mb=1)
    client.force_login(alice)
    assert _upload(client, "a.txt", b"a" * 700_000).status_code == 201

    response = _upload(client, "b.txt", b"b" * 700_000)

    assert response.status_code == 400
    assert "storage" in response.json()["error"]
    client.force_login(bob)  # Another user's storage is their own.
    assert _upload(client, "b.txt", b"b" * 700_000).status_code == 201


def test_a_kind_the_admin_turned_off_is_refused(client, alice):
    AttachmentPolicy.objects.create(images_allowed=False, pdf_allowed=False)
    client.force_login(alice)

    assert "Images are not accepted" in _upload(client, "a.png", files.png_bytes()).json()["error"]
    assert "PDF files are not accepted" in _upload(client, "a.pdf", files.pdf_bytes(["x"])).json()["error"]
    assert _upload(client, "a.docx", files.docx_bytes(["Still fine"])).status_code == 201


def test_deleting_a_conversation_deletes_its_files(client, alice, conversation, django_capture_on_commit_callbacks):
    client.force_login(alice)
    body = _upload(client, "a.txt", b"text").json()
    sent = services.message_send(conversation=conversation, text="See the file")
    Attachment.objects.filter(public_id=body["id"]).update(message=sent.user_message)
    path = Path(Attachment.objects.get().file.path)
    assert path.exists()

    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_delete(conversation=conversation)

    assert not Attachment.objects.exists()
    assert not path.exists()


def test_the_upload_needs_a_signed_in_user_and_a_post(client, alice):
    assert _upload(client, "a.txt", b"text").status_code == 302
    client.force_login(alice)
    assert client.get("/files/").status_code == 405
    assert client.post("/files/", {}).status_code == 400


def test_uploads_never_sent_are_deleted_a_day_later(client, alice, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    client.force_login(alice)
    old = _upload(client, "old.txt", b"old").json()
    path = Path(Attachment.objects.get(public_id=old["id"]).file.path)
    Attachment.objects.filter(public_id=old["id"]).update(created_at=timezone.now() - timedelta(days=2))

    with django_capture_on_commit_callbacks(execute=True):
        new = _upload(client, "new.txt", b"new").json()

    assert list(Attachment.objects.values_list("public_id", flat=True)) == [uuid.UUID(new["id"])]
    assert not path.exists()
