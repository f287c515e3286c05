"""Read a PDF's or a DOCX's text: run as a child process by `inspect._document`, never imported by the site.

    python -m attachments.extract '{"type": ..., "max_chars": N, "max_pages": N}' MEMORY_BYTES < file

Prints one JSON object: {"text", "text_cut", "pages", "pages_cut"} or
{"error": "encrypted"}. Its address space is capped at MEMORY_BYTES and its
parent kills it after a timeout, so a hostile file costs a bounded share of
the server. It imports neither Django nor the site.
"""

import io
import json
import resource
import sys

PDF = "application/pdf"


def _pdf(data: bytes, *, max_chars: int, max_pages: int) -> dict:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            reader.decrypt("")  # Many PDFs are "encrypted" with an empty user password.
        except Exception:
            return {"error": "encrypted"}
    pages = len(reader.pages)
    parts: list[str] = []
    size = 0
    read = 0
    for page in reader.pages[:max_pages]:
        text = page.extract_text() or ""
        parts.append(text)
        size += len(text) + 2
        read += 1
        if size > max_chars:
            break
    text = "\n\n".join(parts).strip()
    return {
        "text": text[:max_chars],
        "text_cut": len(text) > max_chars,
        "pages": pages,
        "pages_cut": read < pages,
    }


def _docx(data: bytes, *, max_chars: int) -> dict:
    from docx import Document

    document = Document(io.BytesIO(data))
    parts: list[str] = []
    size = 0
    for paragraph in document.paragraphs:
        parts.append(paragraph.text)
        size += len(paragraph.text) + 1
        if size > max_chars:
            break
    for table in document.tables:
        if size > max_chars:
            break
        for row in table.rows:
            line = " | ".join(cell.text for cell in row.cells)
            parts.append(line)
            size += len(line) + 1
    text = "\n".join(parts).strip()
    return {"text": text[:max_chars], "text_cut": len(text) > max_chars, "pages": None, "pages_cut": False}


def main() -> None:
    args = json.loads(sys.argv[1])
    memory = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    data = sys.stdin.buffer.read()
    if args["type"] == PDF:
        result = _pdf(data, max_chars=args["max_chars"], max_pages=args["max_pages"])
    else:
        result = _docx(data, max_chars=args["max_chars"])
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
