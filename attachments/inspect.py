"""What an uploaded file is, found from its content (never its name), and what the site keeps of it.

Pure functions from bytes to an `Inspected` (or a `Refused` with the reason
for the person): images are decoded with Pillow within a pixel limit and
encoded again (so nothing but pixels survives: no metadata, no HTML riding
in a PNG chunk), documents are read to text in a child process
(`extract.py`) with a time and memory limit, text files are decoded as UTF-8.
"""

import io
import json
import subprocess
import sys
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _
from PIL import Image, UnidentifiedImageError

# Pixels an image may declare. A 100,000 × 100,000 PNG of a few kilobytes would need 30 GB decoded;
# 50 megapixels (about 150 MB as RGB) is above any photo a phone takes and far above what providers
# accept (OpenAI scales to fit 2048 × 2048).
MAX_IMAGE_PIXELS = 50_000_000
# What a DOCX (a ZIP) may expand to, and the largest expansion ratio of one member: a real Word file
# compresses text about 5-10 times; a ZIP bomb 1000 times or more.
MAX_DOCX_EXPANDED_BYTES = 200 * 1024 * 1024
MAX_DOCX_RATIO = 200
# The child that reads a document: seconds of wall time, and bytes of address space.
EXTRACT_TIMEOUT_S = 30
EXTRACT_MEMORY_BYTES = 1536 * 1024 * 1024

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT = "text/plain"
IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


class Refused(Exception):
    """The file is not accepted; the message says why, for the person who uploaded it."""


@dataclass(frozen=True)
class Limits:
    """What is allowed (AttachmentPolicy's fields): kinds, the text kept, PDF pages read, image side in pixels."""

    images: bool = True
    pdf: bool = True
    docx: bool = True
    text: bool = True
    max_document_chars: int = 200_000
    max_pdf_pages: int = 500
    max_image_side_px: int = 2048


@dataclass(frozen=True)
class Inspected:
    """What to store: `data` (an image encoded again, or the document as uploaded), its type and its text.

    kind: "image" or "document". text: a document's text, cut at the limit
    (`text_cut`); pages: a PDF's page count (`pages_cut`: more than were read).
    """

    kind: str
    content_type: str
    data: bytes
    width: int | None = None
    height: int | None = None
    text: str = ""
    text_cut: bool = False
    pages: int | None = None
    pages_cut: bool = False


def clean_name(name: str) -> str:
    """Return an uploaded file's name fit to display: its last path part, without control characters, ≤ 255.

    "../../etc/passwd\\x00.png" becomes "passwd.png"; an empty result becomes "file".
    The name is only shown; stored files are named by the attachment's id.
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if not unicodedata.category(c).startswith("C")).strip().lstrip(".")
    return name[:255] or "file"


def inspect(data: bytes, *, limits: Limits) -> Inspected:
    """Find what `data` is from its first bytes and return what to keep of it.

    Raises:
        Refused: not an image, PDF, DOCX or UTF-8 text; a kind the admin
            turned off; an image over MAX_IMAGE_PIXELS; a DOCX that expands
            too much; a document that cannot be read in time or memory.
    """
    if data.startswith(_IMAGE_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        if not limits.images:
            raise Refused(_("Images are not accepted on this site."))
        return _image(data, limits=limits)
    if data.startswith(b"%PDF-"):
        if not limits.pdf:
            raise Refused(_("PDF files are not accepted on this site."))
        return _document(data, PDF, limits=limits)
    if data.startswith(b"PK\x03\x04"):
        if not limits.docx:
            raise Refused(_("Word files are not accepted on this site."))
        _docx_check(data)
        return _document(data, DOCX, limits=limits)
    text = _text(data)
    if text is None:
        raise Refused(
            _("This file type is not supported: attach an image (PNG, JPEG, WebP, GIF), a PDF, a DOCX or a text file.")
        )
    if not limits.text:
        raise Refused(_("Text files are not accepted on this site."))
    cut = len(text) > limits.max_document_chars
    return Inspected(
        kind="document", content_type=TEXT, data=data, text=text[: limits.max_document_chars], text_cut=cut
    )


def _image(data: bytes, *, limits: Limits) -> Inspected:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in IMAGE_TYPES:
                raise Refused(_("Only PNG, JPEG, WebP and GIF images are accepted."))
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise Refused(
                    _("This image declares %(width)s × %(height)s pixels; the limit is %(limit)s megapixels.")
                    % {"width": width, "height": height, "limit": MAX_IMAGE_PIXELS // 1_000_000}
                )
            image.seek(0)  # An animated GIF or WebP: its first frame.
            image.load()
            keep_jpeg = image.format == "JPEG"
            frame = image.convert("RGB" if keep_jpeg else "RGBA")
    except Refused:
        raise
    except Image.DecompressionBombError:  # Pillow's own check, at twice its MAX_IMAGE_PIXELS, when opening.
        raise Refused(
            _("This image declares more pixels than the limit of %(limit)s megapixels.")
            % {"limit": MAX_IMAGE_PIXELS // 1_000_000}
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise Refused(_("This image cannot be read: it is damaged or not really an image.")) from None
    frame.thumbnail((limits.max_image_side_px, limits.max_image_side_px))
    out = io.BytesIO()
    if keep_jpeg:
        frame.save(out, format="JPEG", quality=90)
    else:
        frame.save(out, format="PNG", optimize=False)
    return Inspected(
        kind="image",
        content_type="image/jpeg" if keep_jpeg else "image/png",
        data=out.getvalue(),
        width=frame.width,
        height=frame.height,
    )


def _docx_check(data: bytes) -> None:
    """Refuse a ZIP that is no Word document, or that would expand too much (a ZIP bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            names = {m.filename for m in members}
            expanded = sum(m.file_size for m in members)
            ratio = max((m.file_size / max(m.compress_size, 1) for m in members), default=0)
    except (zipfile.BadZipFile, ValueError, OSError):
        raise Refused(_("This ZIP file cannot be read.")) from None
    if "word/document.xml" not in names:
        raise Refused(_("Only Word (DOCX) files are accepted among ZIP files."))
    if expanded > MAX_DOCX_EXPANDED_BYTES or ratio > MAX_DOCX_RATIO:
        raise Refused(_("This Word file expands to far more than it holds (a ZIP bomb?); it is refused."))


def _text(data: bytes) -> str | None:
    """Return `data` as text when it is UTF-8 without NUL or other binary control characters, else None."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r\f" for c in text[:100_000]):
        return None
    return text.replace("\r\n", "\n")


def _document(data: bytes, content_type: str, *, limits: Limits) -> Inspected:
    """Read a PDF's or DOCX's text in a child process (`extract.py`) bounded in time and memory."""
    args = {"type": content_type, "max_chars": limits.max_document_chars, "max_pages": limits.max_pdf_pages}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "attachments.extract", json.dumps(args), str(EXTRACT_MEMORY_BYTES)],
            input=data,
            capture_output=True,
            timeout=EXTRACT_TIMEOUT_S,
            cwd=Path(__file__).resolve().parents[1],
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Refused(
            _("Reading this document took longer than %(seconds)s seconds; it is refused.")
            % {"seconds": EXTRACT_TIMEOUT_S}
        ) from None
    try:
        result = json.loads(done.stdout)
    except ValueError:
        result = None
    if done.returncode != 0 or not isinstance(result, dict):
        raise Refused(_("This document cannot be read: it is damaged, protected or too complex.")) from None
    if result.get("error") == "encrypted":
        raise Refused(_("This PDF is protected by a password; it cannot be read."))
    text = str(result.get("text", ""))
    if not text.strip():
        raise Refused(_("No text was found in this document (a scanned PDF has only images)."))
    return Inspected(
        kind="document",
        content_type=content_type,
        data=data,
        text=text,
        text_cut=bool(result.get("text_cut")),
        pages=result.get("pages"),
        pages_cut=bool(result.get("pages_cut")),
    )
