"""Export downloads, "Your data", uploads and import progress: anonymous, another user, htmx and plain."""

import io
import json
import random
import tracemalloc
import zipfile
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations.models import Conversation, Message
from tests.conversations.history import make_conversation
from transfer import export
from transfer import jobs as import_jobs
from transfer.models import ImportJob

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def post_upload(client, monkeypatch, django_capture_on_commit_callbacks):
    """Return `post(content, name)`: upload a file as the logged-in user; the import runs inline after commit."""
    monkeypatch.setattr(import_jobs, "start_import_thread", lambda job_id: import_jobs.import_job_run(job_id=job_id))

    def post(content: bytes, name: str = "conversations.json"):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("transfer:import-create"), upload(content, name))

    return post


@pytest.fixture
def conversation(alice, persona):
    return make_conversation(alice, persona)


@pytest.fixture
def job(alice):
    return ImportJob.objects.create(owner=alice, source="imports/x.json", filename="alices-history.json", total=400)


def export_url(conversation, fmt="md"):
    return reverse("transfer:conversation-export", kwargs={"public_id": conversation.public_id, "fmt": fmt})


def job_url(job):
    return reverse("transfer:import-detail", kwargs={"public_id": job.public_id})


def upload(content: bytes, name="conversations.json"):
    return {"file": SimpleUploadedFile(name, content, content_type="application/json")}


def read_zip(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


# Who may see what


def test_anonymous_user_is_sent_to_login_everywhere(client, conversation, job):
    urls = [
        export_url(conversation),
        reverse("transfer:export-all"),
        reverse("transfer:data"),
        job_url(job),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/"), url
    response = client.post(reverse("transfer:import-create"), upload(b"[]"))
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert not ImportJob.objects.exclude(pk=job.pk).exists()


@pytest.mark.parametrize("fmt", ["json", "md", "txt"])
def test_other_user_gets_404_for_a_conversation_export(client, bob, conversation, fmt):
    client.force_login(bob)
    assert client.get(export_url(conversation, fmt)).status_code == 404


def test_other_user_gets_404_for_an_import_job_and_never_sees_it(client, bob, job):
    client.force_login(bob)
    assert client.get(job_url(job)).status_code == 404
    assert client.get(job_url(job), **HTMX).status_code == 404
    page = client.get(reverse("transfer:data")).content.decode()
    assert str(job.public_id) not in page and "alices-history.json" not in page


def test_other_users_export_all_has_none_of_alices_conversations(client, bob, conversation):
    client.force_login(bob)
    archive = read_zip(client.get(reverse("transfer:export-all")))
    assert json.loads(archive.read("conversations.json"))["conversations"] == []
    assert archive.namelist() == ["conversations.json"]


def test_unknown_export_format_is_404(client, alice, conversation):
    client.force_login(alice)
    assert client.get(export_url(conversation, "pdf")).status_code == 404


# One conversation


@pytest.mark.parametrize(
    ("fmt", "content_type", "needle"),
    [
        ("json", "application/json", '"format": "chatsite.conversations"'),
        ("md", "text/markdown; charset=utf-8", "# Trip to Lisbon"),
        ("txt", "text/plain; charset=utf-8", "--- User ---"),
    ],
)
def test_conversation_export_downloads_the_file(client, alice, conversation, fmt, content_type, needle):
    client.force_login(alice)
    response = client.get(export_url(conversation, fmt))
    assert response.status_code == 200 and response["Content-Type"] == content_type
    name = f"2025-03-01-Trip-to-Lisbon-{conversation.public_id.hex[:8]}.{fmt}"
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert "no-store" in response["Cache-Control"]
    assert needle in response.content.decode()


def test_conversation_export_names_a_chinese_title_in_utf8_with_an_ascii_fallback(client, alice, persona):
    conversation = make_conversation(alice, persona, title="旅行计划 / 里斯本")
    client.force_login(alice)
    header = client.get(export_url(conversation, "md"))["Content-Disposition"]
    short = conversation.public_id.hex[:8]
    assert header == (
        f'attachment; filename="2025-03-01-conversation-{short}.md"; '
        f"filename*=utf-8''{quote(f'2025-03-01-旅行计划-里斯本-{short}.md')}"
    )


def test_conversation_export_escapes_quotes_in_the_file_name(client, alice, persona):
    conversation = make_conversation(alice, persona, title='say "hi"\r\nX-Injected: 1')
    client.force_login(alice)
    response = client.get(export_url(conversation, "txt"))
    assert response["Content-Disposition"] == (
        f'attachment; filename="2025-03-01-say-hi-X-Injected-1-{conversation.public_id.hex[:8]}.txt"'
    )
    assert "X-Injected" not in response.headers


def test_conversation_header_links_the_three_export_formats(client, alice, conversation):
    client.force_login(alice)
    page = client.get(conversation.get_absolute_url()).content.decode()
    for fmt in ["md", "txt", "json"]:
        assert f'href="{export_url(conversation, fmt)}" download' in page


# Export all


def test_export_all_streams_a_zip_of_every_conversation(client, alice, persona):
    conversations = [
        make_conversation(alice, persona, title="Visible"),
        make_conversation(alice, persona, title="Archived", archived=True),
        make_conversation(alice, None, title="No persona"),
    ]
    client.force_login(alice)
    response = client.get(reverse("transfer:export-all"))
    assert response.status_code == 200 and response.streaming is True
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="chatsite-export-')
    archive = read_zip(response)
    document = json.loads(archive.read("conversations.json"))
    assert document["format"] == "chatsite.conversations"
    assert [c["id"] for c in document["conversations"]] == [str(c.public_id) for c in conversations]
    assert [len(c["messages"]) for c in document["conversations"]] == [4, 4, 4]
    markdown = sorted(name for name in archive.namelist() if name.endswith(".md"))
    assert len(markdown) == 3 and all(name.startswith("conversations/2025-03-01-") for name in markdown)
    assert "# Archived" in archive.read(next(n for n in markdown if "-Archived-" in n)).decode()


def test_export_all_query_count_does_not_grow_with_conversations(client, alice, persona, django_assert_num_queries):
    for i in range(5):
        make_conversation(alice, persona, title=f"C{i}")
    client.force_login(alice)
    # Session, user and the attachments sent, then per pass (JSON, Markdown): the personas, the user's
    # folders, the conversations and one query for their messages.
    with django_assert_num_queries(3 + 2 * 4):
        b"".join(client.get(reverse("transfer:export-all")).streaming_content)


@pytest.mark.django_db(transaction=True)
async def test_export_all_under_asgi_streams_from_an_async_iterator(async_client, alice, persona):
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(make_conversation)(alice, persona)
    await async_client.aforce_login(alice)
    try:
        response = await async_client.get(reverse("transfer:export-all"))
        # A sync iterator would be read whole into a list by Django before sending.
        assert response.streaming and response.is_async
        data = b"".join([chunk async for chunk in response.streaming_content])
    finally:
        # The test client keeps the view thread's connection open (a server closes it when the response ends).
        await sync_to_async(connections.close_all)()
    assert len(json.loads(zipfile.ZipFile(io.BytesIO(data)).read("conversations.json"))["conversations"]) == 1


def test_export_all_memory_stays_well_below_the_size_of_the_history(client, alice, persona):
    """300 conversations of 10 messages of 6 KB: 18 MB of text, never all in memory at once."""
    rng = random.Random(0)
    conversations = Conversation.objects.bulk_create(
        Conversation(owner=alice, persona=persona, title=f"Conversation {i}") for i in range(300)
    )
    Message.objects.bulk_create(
        (
            Message(conversation=c, role="user" if i % 2 == 0 else "assistant", content=rng.randbytes(3000).hex())
            for c in conversations
            for i in range(10)
        ),
        batch_size=500,
    )
    history_bytes = 300 * 10 * 6000
    client.force_login(alice)
    tracemalloc.start()
    try:
        response = client.get(reverse("transfer:export-all"))
        received = 0
        for chunk in response.streaming_content:
            received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received > history_bytes / 2  # the text went out (hex compresses about 2:1, twice: JSON and Markdown)
    # Holding every message at once (a list, a prefetch, a ZIP built in memory) needs more than the history.
    assert peak < history_bytes / 2, f"peak {peak / 1e6:.1f} MB"


# "Your data"


def test_data_page_offers_export_all_the_import_form_and_the_users_jobs(client, alice, job):
    client.force_login(alice)
    page = client.get(reverse("transfer:data")).content.decode()
    assert f'href="{reverse("transfer:export-all")}"' in page and 'id="import-form"' in page
    assert 'enctype="multipart/form-data"' in page and 'id="conversations"' in page  # the sidebar
    assert f'id="import-{job.public_id}"' in page


def test_data_page_htmx_request_gets_only_the_panel(client, alice):
    client.force_login(alice)
    page = client.get(reverse("transfer:data"), **HTMX).content.decode()
    assert 'id="data-page"' in page and "<html" not in page and 'id="conversations"' not in page


# Import progress


def test_import_progress_polls_itself_while_running(client, alice, job):
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, done=120)
    client.force_login(alice)
    fragment = client.get(job_url(job), **HTMX).content.decode()
    assert "<html" not in fragment and "Imported 120 of 400 conversations" in fragment
    assert f'hx-get="{job_url(job)}"' in fragment and 'hx-trigger="every 1s"' in fragment


@pytest.mark.parametrize("status", [ImportJob.Status.DONE, ImportJob.Status.FAILED])
def test_import_progress_stops_polling_when_the_job_ends(client, alice, job, status):
    ImportJob.objects.filter(pk=job.pk).update(status=status, done=400, error_text="Broken file.")
    client.force_login(alice)
    fragment = client.get(job_url(job), **HTMX).content.decode()
    assert f'data-status="{status}"' in fragment and "hx-trigger" not in fragment


def test_import_cut_off_by_a_restart_stops_polling_and_says_so(client, alice, job):
    two_hours_ago = timezone.now() - timedelta(hours=2)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, created_at=two_hours_ago)
    client.force_login(alice)
    for url in [job_url(job), reverse("transfer:data")]:
        page = client.get(url, **HTMX).content.decode()
        assert "stopped when the site restarted" in page and "hx-trigger" not in page, url


def test_import_cut_off_after_some_batches_says_how_many_were_imported(client, alice, job):
    two_hours_ago = timezone.now() - timedelta(hours=2)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, heartbeat_at=two_hours_ago, done=120)
    client.force_login(alice)
    page = client.get(job_url(job), **HTMX).content.decode()
    assert "stopped when the site restarted and was not resumed; 120 of 400 conversations were imported" in page
    assert "hx-trigger" not in page


def test_import_progress_plain_request_gets_the_whole_page(client, alice, job):
    client.force_login(alice)
    page = client.get(job_url(job)).content.decode()
    assert "<html" in page and f'id="import-{job.public_id}"' in page and 'id="conversations"' in page


def test_import_progress_fragment_takes_three_queries(client, alice, job, django_assert_num_queries):
    client.force_login(alice)
    with django_assert_num_queries(3):  # session, user, job
        client.get(job_url(job), **HTMX)


def test_import_notes_and_errors_are_shown_escaped(client, alice, job):
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.DONE, notes="“<b>x</b>”: not imported: 1 × image."
    )
    client.force_login(alice)
    page = client.get(job_url(job), **HTMX).content.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "1 × image" in page


# Uploads


def test_upload_imports_a_site_export_and_goes_back_to_your_data(client, alice, bob, persona, post_upload):
    source = make_conversation(bob, persona, title="From elsewhere")
    data = export.conversation_json(
        Conversation.objects.select_related("persona__model").get(pk=source.pk),
        list(source.messages.filter(is_current=True)),
        exported_at=source.created_at,
    )
    client.force_login(alice)
    response = post_upload(data)
    assert response.status_code == 302 and response.url == reverse("transfer:data")
    job = ImportJob.objects.get(owner=alice)
    assert (job.status, job.format, job.total, job.done, job.filename) == ("done", "site", 1, 1, "conversations.json")
    imported = Conversation.objects.get(owner=alice)
    assert imported.title == "From elsewhere" and imported.messages.count() == 4
    page = client.get(response.url).content.decode()
    assert "Imported 1 of 1 conversation" in page and 'hx-trigger="every 1s"' not in page


def test_malformed_upload_imports_nothing_and_shows_the_error(client, alice, post_upload):
    client.force_login(alice)
    post_upload(b"{not json")
    job = ImportJob.objects.get(owner=alice)
    assert job.status == "failed" and not Conversation.objects.exists()
    page = client.get(reverse("transfer:data")).content.decode()
    assert "The file is not valid JSON." in page and "Nothing was imported." in page


def test_upload_of_another_shape_imports_nothing_and_shows_the_error(client, alice, post_upload):
    client.force_login(alice)
    post_upload(b'{"conversations": []}')
    page = client.get(job_url(ImportJob.objects.get(owner=alice))).content.decode()
    assert "neither an export of this site nor ChatGPT" in page and not Conversation.objects.exists()


def test_oversized_upload_is_refused_while_it_is_read(client, alice, settings, _media_root, post_upload):
    settings.CHAT_IMPORT_MAX_BYTES = 2000
    client.force_login(alice)
    response = post_upload(b"[" + b" " * 5000 + b"]")
    assert response.status_code == 413
    assert "The file is larger than 2.0\xa0KB" in response.content.decode()
    assert not ImportJob.objects.exists() and not list(_media_root.rglob("*.json"))


def test_far_oversized_upload_is_refused_before_it_is_parsed(client, alice, settings, monkeypatch):
    settings.CHAT_IMPORT_MAX_BYTES = 2000
    from django.http.multipartparser import MultiPartParser

    def parse(self):
        raise AssertionError("the body was parsed")

    monkeypatch.setattr(MultiPartParser, "parse", parse)
    client.force_login(alice)
    response = client.post(reverse("transfer:import-create"), upload(b"[" + b" " * 200_000 + b"]"))
    assert response.status_code == 413 and "The file is larger than 2.0\xa0KB" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_a_second_upload_while_an_import_is_unfinished_is_refused_and_not_stored(
    client, alice, bob, monkeypatch, _media_root, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(import_jobs, "start_import_thread", lambda job_id: None)  # the first import keeps waiting
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("transfer:import-create"), upload(b"[]")).status_code == 302
    response = client.post(reverse("transfer:import-create"), upload(b"[]", "second.json"))
    assert response.status_code == 400
    assert "You already have an import waiting or running." in response.content.decode()
    assert ImportJob.objects.filter(owner=alice).count() == 1
    assert [path.name for path in _media_root.rglob("*.json")] == ["conversations.json"]
    client.force_login(bob)  # another user's upload is taken
    assert client.post(reverse("transfer:import-create"), upload(b"[]")).status_code == 302
    assert ImportJob.objects.filter(owner=bob).count() == 1


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"file": SimpleUploadedFile("notes.txt", b"[]")}, "Upload a .json file"),
        ({"file": SimpleUploadedFile("conversations.json", b"")}, "The submitted file is empty."),
        ({}, "Choose a file to import."),
    ],
)
def test_unusable_upload_is_refused_with_a_reason(client, alice, files, message):
    client.force_login(alice)
    response = client.post(reverse("transfer:import-create"), files)
    assert response.status_code == 400 and message in response.content.decode()
    assert not ImportJob.objects.exists()


def test_upload_needs_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("transfer:import-create"), upload(b"[]"))
    assert response.status_code == 403 and not ImportJob.objects.exists()
