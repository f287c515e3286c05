"""Hostile uploads are refused or tamed within the set limits; nothing lands outside the media folder.

Each file goes through the real upload view (multipart POST /files/), as a
browser would send it; the site keeps answering afterwards.
"""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from attachments.models import Attachment
from tests.attachments import files

pytestmark = pytest.mark.django_db

UPLOAD = "/files/"


def _upload(client, name: str, data: bytes, content_type: str = "application/octet-stream"):
    return client.post(UPLOAD, {"file": SimpleUploadedFile(name, data, content_type=content_type)})


def _stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _site_still_answers(client) -> None:
    response = _upload(client, "fine.txt", b"still here")
    assert response.status_code == 201


def test_a_png_that_is_also_html_is_stored_as_pixels_only_and_served_as_an_image(client, alice, media_root):
    client.force_login(alice)
    response = _upload(client, "page.html", files.png_html_polyglot_bytes(), content_type="text/html")

    assert response.status_code == 201
    attachment = Attachment.objects.get(owner=alice)
    assert (attachment.kind, attachment.content_type) == ("image", "image/png")
    stored = Path(attachment.file.path).read_bytes()
    assert b"<script" not in stored and b"<html" not in stored
    served = client.get(response.json()["url"])
    assert served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served["Content-Security-Policy"]
    assert Path(attachment.file.path).name.endswith(".png")


def test_an_image_declaring_100000_by_100000_pixels_is_refused_without_decoding_it(client, alice, media_root):
    client.force_login(alice)
    bomb = files.png_bomb_bytes(100_000, 100_000)
    assert len(bomb) < 400_000

    response = _upload(client, "small.png", bomb, content_type="image/png")

    assert response.status_code == 400
    assert "megapixels" in response.json()["error"]
    assert not Attachment.objects.exists()
    assert _stored_files(media_root) == []
    _site_still_answers(client)


def test_a_zip_bomb_named_docx_is_refused(client, alice, media_root):
    client.force_login(alice)
    response = _upload(client, "report.docx", files.docx_zip_bomb_bytes(100))

    assert response.status_code == 400
    assert "ZIP bomb" in response.json()["error"]
    assert _stored_files(media_root) == []
    _site_still_answers(client)


def test_a_pdf_of_10000_pages_is_read_up_to_the_page_limit_and_the_person_is_told(client, alice, media_root):
    client.force_login(alice)
    response = _upload(client, "long.pdf", files.pdf_bytes(["Quokka page"] * 10_000))

    assert response.status_code == 201
    body = response.json()
    assert (body["pages"], body["text_cut"]) == (10_000, True)
    attachment = Attachment.objects.get(owner=alice)
    assert attachment.text.count("Quokka page") == 500  # AttachmentPolicy.max_pdf_pages's default
    _site_still_answers(client)


def test_a_name_with_dot_dot_and_control_characters_is_shown_clean_and_stored_by_id(client, alice, media_root):
    client.force_login(alice)
    name = "../../../etc/\x00pass\x07wd\x1b[31m.txt"

    response = _upload(client, name, b"harmless text")

    assert response.status_code == 201
    attachment = Attachment.objects.get(owner=alice)
    assert attachment.name == "passwd[31m.txt"
    stored = _stored_files(media_root)
    assert [p.name for p in stored] == [f"{attachment.public_id.hex}.txt"]
    assert stored[0].resolve().is_relative_to(Path(media_root).resolve() / "attachments" / str(alice.pk))


def test_an_image_just_over_the_pixel_limit_is_refused_by_its_declared_size(client, alice, media_root):
    client.force_login(alice)
    response = _upload(client, "wide.png", files.png_bomb_bytes(10_000, 6_000), content_type="image/png")

    assert response.status_code == 400
    assert "10000 × 6000" in response.json()["error"]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(client, alice, media_root):
    from attachments.models import AttachmentPolicy

    AttachmentPolicy.objects.create(max_file_mb=1)
    client.force_login(alice)

    response = _upload(client, "big.txt", b"a" * (2 * 1024 * 1024))

    assert response.status_code == 413
    assert "1 MB" in response.json()["error"] or "1.0" in response.json()["error"]
    assert _stored_files(media_root) == []


def test_binary_data_with_a_text_name_is_refused(client, alice, media_root):
    client.force_login(alice)
    response = _upload(client, "notes.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))

    assert response.status_code == 400
    assert "not supported" in response.json()["error"]
    assert _stored_files(media_root) == []
