"""Measure attaching and sending a 10 MB PDF: the upload (type check and text extraction), then the send
until the reply's first delta and its final bubble.

The site runs in a daphne process on a fresh SQLite database (bench/environment.py);
the fake OpenAI server (tests/fakes/openai_server.py) answers in a thread of this
process. The PDF is built by tests/attachments/files.py: about 10 MB of text
pages, each its own content stream; the site reads text from the first pages
until the policy's 200,000 characters (AttachmentPolicy defaults), so the
request upstream carries a large document. The model's context window is left
unknown, so the history limit alone bounds the context. Prints figures; asserts
nothing. Usage (from the repository root):

    .venv/bin/python bench/attach_pdf.py [--runs 5] [--mb 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site
from tests.attachments.files import pdf_bytes
from tests.fakes.openai_server import FakeOpenAIServer
from tests.servers import DaphneServer, database_url, session_cookie

DELTA = re.compile(r'<div id="message-[0-9a-f-]{36}-body" hx-swap-oob="beforeend">')
FINAL = 'data-status="complete" hx-swap-oob="true"'
PAGE_LINE = "Quokkas are small marsupials of south-western Australia; page {page}, line {line}."


def big_pdf(megabytes: float) -> bytes:
    """Return a PDF of about `megabytes` MB: text pages of 40 lines, each page's text its own."""
    pages = []
    size = 0
    while size < megabytes * 1024 * 1024:
        text = "\n".join(PAGE_LINE.format(page=len(pages) + 1, line=line) for line in range(40))
        pages.append(text)
        size += len(text) + 620  # the content stream's operators, the page object, its xref line
    return pdf_bytes(pages)


def _setup(upstream_url: str) -> tuple[str, str]:
    from django.contrib.auth import get_user_model

    from conversations import services
    from personas import crypto
    from personas.models import ChatModel, Persona, Provider

    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
    provider = Provider.objects.create(
        name="Bench upstream", base_url=upstream_url, is_local=True, api_key_encrypted=crypto.encrypt("bench-key")
    )
    model = ChatModel.objects.create(provider=provider, model_id="long:20", enabled=True)
    persona = Persona.objects.create(name="Bench", slug="bench", model=model, greeting="", history_limit=2)
    conversation = services.conversation_create(owner=user, persona=persona)
    return str(conversation.public_id), session_cookie(user)


async def _run(site: DaphneServer, conversation_id: str, cookie: str, pdf: bytes, runs: int) -> list[tuple]:
    import aiohttp
    from websockets.asyncio.client import connect

    csrf = secrets.token_hex(16)
    headers = {"Cookie": f"{cookie}; csrftoken={csrf}", "X-CSRFToken": csrf, "Origin": site.origin}
    results = []
    url = site.ws_url(f"/ws/conversations/{conversation_id}/")
    async with (
        aiohttp.ClientSession() as http,
        connect(url, origin=site.origin, additional_headers={"Cookie": cookie}) as ws,
    ):
        for i in range(runs):
            form = aiohttp.FormData()
            form.add_field("file", pdf, filename="big.pdf", content_type="application/pdf")
            start = time.perf_counter()
            async with http.post(site.url("/files/"), data=form, headers=headers) as response:
                body = await response.json()
                if response.status != 201:
                    raise RuntimeError(f"upload refused: {response.status} {body}")
            uploaded = time.perf_counter()
            frame = {"action": "send", "message": f"Summarise {i}", "attachments": body["id"]}
            await ws.send(json.dumps(frame))
            first = None
            while True:
                text = await asyncio.wait_for(ws.recv(), 120)
                if "composer-alert" in text and 'role="alert" hx-swap-oob="true"></div>' not in text:
                    raise RuntimeError(f"send refused: {text[:300]}")
                if first is None and DELTA.search(text):
                    first = time.perf_counter()
                if FINAL in text:
                    break
            done = time.perf_counter()
            results.append(
                (uploaded - start, (first or done) - uploaded, done - uploaded, body["chars"], body["pages"])
            )
    return results


def _line(label: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"  {label:<34} median {statistics.median(ms):8.1f}  min {ms[0]:8.1f}  max {ms[-1]:8.1f}  (ms, n={len(ms)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="uploads and sends measured (default 5)")
    parser.add_argument("--mb", type=float, default=10, help="the PDF's size in MB (default 10)")
    args = parser.parse_args(argv)
    pdf = big_pdf(args.mb)

    with bench_site(static=False) as _tmp, FakeOpenAIServer() as upstream:
        conversation_id, cookie = _setup(upstream.base_url)
        from django.conf import settings

        with DaphneServer(database_url=database_url(settings.DATABASES["default"])) as site:
            results = asyncio.run(_run(site, conversation_id, cookie, pdf, args.runs))
        sent = [r for r in upstream.requests if r.path.endswith("/chat/completions") and (r.body or {}).get("stream")]
        upstream_chars = len(sent[-1].body["messages"][-1]["content"]) if sent else 0

    chars, pages = results[0][3], results[0][4]
    print(f"Attach and send a {len(pdf) / 1024 / 1024:.1f} MB PDF ({pages} pages; {chars:,} characters of text kept)")
    print(_line("upload (POST /files/, 201):", [r[0] for r in results]))
    print(_line("send -> first delta:", [r[1] for r in results]))
    print(_line("send -> final bubble:", [r[2] for r in results]))
    print(_line("attach + send -> final bubble:", [r[0] + r[2] for r in results]))
    print(f"  the question upstream carried {upstream_chars:,} characters (the document inside its delimiters)")


if __name__ == "__main__":
    main()
