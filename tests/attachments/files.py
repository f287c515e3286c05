"""Files for attachment tests, built in memory: real formats, hostile ones included.

`pdf_bytes` writes a PDF by hand (PDF 1.4, ISO 32000-1 §7.5: header, objects,
cross-reference table, trailer) whose pages draw text in Helvetica, one of the
standard 14 fonts every reader has; pages with the same text share one content
stream, so 10,000 pages stay small.
"""

import io
import struct
import zipfile
import zlib

from PIL import Image


def png_bytes(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG of a few hundred bytes whose header declares `width` × `height` RGB pixels (PNG spec, §11.2.2)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # The first rows only; a decoder that trusted the header would allocate width × height × 3 bytes first.
    rows = zlib.compress(b"\x00" + b"\x00" * (width * 3), 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


POLYGLOT_HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"


def png_html_polyglot_bytes() -> bytes:
    """A valid PNG that is also an HTML page: the markup rides in a text chunk and after IEND."""
    png = png_bytes()
    end = png.rindex(b"IEND") - 4
    text = _chunk(b"tEXt", b"Comment\x00" + POLYGLOT_HTML)
    return png[:end] + text + png[end:] + POLYGLOT_HTML


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[str]) -> bytes:
    """Return a PDF of one page per text in `pages` (each text drawn on one line, or several by "\\n")."""
    streams: dict[str, int] = {}
    objects: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    page_ids = []
    for text in pages:
        if text not in streams:
            lines = " ".join(f"({_escape(line)}) Tj T*" for line in text.split("\n"))
            content = f"BT /F1 11 Tf 14 TL 40 800 Td {lines} ET".encode("latin-1", "replace")
            objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
            streams[text] = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % streams[text]
        )
        page_ids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = " ".join(f"{i} 0 R" for i in page_ids).encode()
    objects[1] = b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(page_ids)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def docx_bytes(paragraphs: list[str]) -> bytes:
    from docx import Document

    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_zip_bomb_bytes(expanded_mb: int = 100) -> bytes:
    """A ZIP named like a Word file whose word/document.xml expands to `expanded_mb` MB of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\x00" * (1024 * 1024)
            for _ in range(expanded_mb):
                member.write(block)
    return out.getvalue()
