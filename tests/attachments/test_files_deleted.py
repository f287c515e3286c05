"""An attachment's file goes with its row, however the row goes, once the deletion commits; a sweep finds strays."""

import io
import os
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import transaction

from attachments import services
from attachments.models import Attachment
from conversations import services as chat_services

pytestmark = pytest.mark.django_db


def _stored(owner, name: str = "a.txt", text: bytes = b"text") -> tuple[Attachment, Path]:
    attachment = services.attachment_upload(owner=owner, upload=SimpleUploadedFile(name, text))
    return attachment, Path(attachment.file.path)


def _sent(conversation, text: bytes = b"sent") -> Path:
    attachment, path = _stored(conversation.owner, text=text)
    sent = chat_services.message_send(conversation=conversation, text="See the file")
    Attachment.objects.filter(pk=attachment.pk).update(message=sent.user_message)
    return path


def test_deleting_a_user_in_the_admin_deletes_their_files(
    admin_client, django_user_model, alice, bob, django_capture_on_commit_callbacks
):
    _unsent, unsent = _stored(alice)
    _bobs, bobs = _stored(bob, text=b"bob's")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/auth/user/{alice.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not django_user_model.objects.filter(pk=alice.pk).exists()
    assert (unsent.exists(), bobs.exists()) == (False, True)


def test_deleting_a_user_with_chats_deletes_the_files_of_their_messages(
    alice, conversation, django_capture_on_commit_callbacks
):
    sent = _sent(conversation)
    _unsent, unsent = _stored(alice, text=b"unsent")

    with django_capture_on_commit_callbacks(execute=True):
        alice.delete()

    assert not Attachment.objects.exists()
    assert (sent.exists(), unsent.exists()) == (False, False)


def test_deleting_an_attachment_in_the_admin_deletes_its_file(admin_client, alice, django_capture_on_commit_callbacks):
    attachment, path = _stored(alice)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/attachments/attachment/{attachment.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not path.exists()


def test_a_rolled_back_user_deletion_keeps_the_files(alice, conversation, django_capture_on_commit_callbacks):
    path = _sent(conversation)
    alice_id = alice.pk

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        alice.delete()
        raise RuntimeError("rolled back")

    assert callbacks == []
    assert Attachment.objects.filter(owner_id=alice_id).exists()
    assert path.exists()


def test_a_file_shared_by_an_edited_questions_copy_stays_until_its_last_row_goes(
    alice, conversation, django_capture_on_commit_callbacks
):
    path = _sent(conversation)
    original = Attachment.objects.get()
    later = chat_services.message_send(conversation=conversation, text="Again")
    copy = services.attachments_copy(from_message_id=original.message_id, to_message_id=later.user_message.pk)[0]

    with django_capture_on_commit_callbacks(execute=True):
        original.delete()
    assert path.exists()

    with django_capture_on_commit_callbacks(execute=True):
        copy.delete()
    assert not path.exists()


def test_the_sweep_deletes_old_files_no_attachment_names(alice, media_root):
    _kept, kept = _stored(alice)
    folder = Path(media_root) / "attachments" / str(alice.pk)
    stray, fresh = folder / "stray.txt", folder / "fresh.txt"
    stray.write_bytes(b"left by a crash")
    fresh.write_bytes(b"an upload being saved")
    day_ago = time.time() - 25 * 3600
    for path in (kept, stray):
        os.utime(path, (day_ago, day_ago))

    listed = io.StringIO()
    call_command("attachment_files_sweep", "--dry-run", stdout=listed)
    assert listed.getvalue().splitlines()[0] == f"attachments/{alice.pk}/stray.txt"
    assert stray.exists()
    call_command("attachment_files_sweep", stdout=io.StringIO())

    assert (kept.exists(), stray.exists(), fresh.exists()) == (True, False, True)
