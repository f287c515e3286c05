"""The import worker: one import per user, batches others can see, jobs taken up again after a restart,
uploads deleted, memory bounded by the batch."""

import os
import random
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from conversations import rendering
from conversations.models import Conversation, Message
from tests.servers import DaphneServer
from tests.transfer.test_import import chatgpt_bytes, chatgpt_conversation, make_job, text
from tests.waiting import wait_until
from transfer import jobs as import_jobs
from transfer.importers import ParsedConversation, ParsedMessage
from transfer.management.commands import import_job_run
from transfer.models import ImportJob

pytestmark = pytest.mark.django_db

REFUSAL = "You already have an import waiting or running. Wait until it has finished, then upload the next file."


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def carol(django_user_model):
    return django_user_model.objects.create_user("carol", "carol@example.com", "carol-password-1")


def upload(content: bytes | None = None, name: str = "conversations.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content or chatgpt_bytes())


def stored_files(media_root) -> list:
    return sorted(path for path in media_root.rglob("*") if path.is_file())


def conversations_titled(*titles: str) -> bytes:
    """A ChatGPT export whose conversations end with a reply naming their title ("Reply of C2")."""
    conversations = []
    for title in titles:
        conversation = chatgpt_conversation(title)
        conversation["mapping"]["a2"]["message"]["content"] = text(f"Reply of {title}")
        conversations.append(conversation)
    return chatgpt_bytes(*conversations)


def orphan(job: ImportJob, **fields) -> None:
    """Leave `job` as a process that died while running it would: running, its heartbeat too old."""
    old = timezone.now() - import_jobs.ORPHANED_AFTER - timedelta(seconds=1)
    ImportJob.objects.filter(pk=job.pk).update(status="running", heartbeat_at=old, **{"attempts": 1, **fields})


class ProcessDied(BaseException):
    """Stands for the process being killed: nothing of the job's own handling runs."""


# One import per user


@pytest.mark.parametrize("status", ["pending", "running"])
def test_a_second_import_while_one_waits_or_runs_is_refused_and_not_stored(alice, _media_root, status):
    first = import_jobs.import_job_create(owner=alice, upload=upload())
    ImportJob.objects.filter(pk=first.pk).update(status=status, heartbeat_at=timezone.now())
    with pytest.raises(ValidationError) as refused:
        import_jobs.import_job_create(owner=alice, upload=upload(name="second.json"))
    assert refused.value.code == "unfinished" and refused.value.messages == [REFUSAL]
    assert list(ImportJob.objects.values_list("pk", flat=True)) == [first.pk]
    assert stored_files(_media_root) == [_media_root / first.source.name]


def test_another_user_is_not_refused_and_an_ended_import_refuses_nothing(alice, bob):
    first = import_jobs.import_job_create(owner=alice, upload=upload())
    assert import_jobs.import_job_create(owner=bob, upload=upload()).status == "pending"
    ImportJob.objects.filter(pk=first.pk).update(status="done")
    assert import_jobs.import_job_create(owner=alice, upload=upload()).status == "pending"


def test_the_database_holds_one_unfinished_import_per_user(alice):
    make_job(alice, b"[]")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_job(alice, b"[]")


def test_an_upload_that_loses_the_race_to_the_constraint_is_refused_and_deleted(alice, _media_root, monkeypatch):
    first = import_jobs.import_job_create(owner=alice, upload=upload())
    monkeypatch.setattr(import_jobs, "UNFINISHED", ())  # the check sees no job, as a concurrent upload would
    with pytest.raises(ValidationError, match="You already have an import waiting or running"):
        import_jobs.import_job_create(owner=alice, upload=upload(name="second.json"))
    assert stored_files(_media_root) == [_media_root / first.source.name]


def test_a_stalled_import_is_failed_and_replaced_by_the_next_upload(
    alice, _media_root, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(import_jobs, "start_import_thread", lambda job_id: None)
    stalled = make_job(alice, chatgpt_bytes())
    ImportJob.objects.filter(pk=stalled.pk).update(created_at=timezone.now() - timedelta(hours=2), done=3, total=7)
    with django_capture_on_commit_callbacks(execute=True):
        job = import_jobs.import_job_create(owner=alice, upload=upload(name="again.json"))
    stalled.refresh_from_db()
    assert (stalled.status, stalled.source.name) == ("failed", "")
    assert stalled.error_text == (
        "This import stopped when the site restarted and was not resumed. "
        "3 of 7 conversations were imported; the others were not."
    )
    assert stored_files(_media_root) == [_media_root / job.source.name]


# Batches


@pytest.mark.django_db(transaction=True)
def test_other_connections_see_each_batch_and_its_progress_while_the_import_runs(alice, bob, monkeypatch):
    monkeypatch.setattr(import_jobs, "BATCH_ROWS", 1)  # one conversation per batch
    job = make_job(alice, conversations_titled("C1", "C2", "C3"))
    render = rendering.render_markdown
    seen: dict[str, object] = {}

    def look_from_another_connection() -> None:
        try:
            seen["titles"] = list(Conversation.objects.filter(owner=alice).values_list("title", flat=True))
            seen["done"] = ImportJob.objects.values_list("done", flat=True).get(pk=job.pk)
            # Nothing holds the writer: another user's write goes through at once.
            with transaction.atomic():
                seen["wrote"] = type(bob).objects.filter(pk=bob.pk).update(first_name="Bob")
        finally:
            connection.close()

    def render_and_look(markdown: str) -> str:
        if markdown == "Reply of C2":  # rendering the second batch
            other = threading.Thread(target=look_from_another_connection)
            other.start()
            other.join(timeout=30)
        return render(markdown)

    monkeypatch.setattr(rendering, "render_markdown", render_and_look)
    job = import_jobs.import_job_run(job_id=job.pk)
    assert seen == {"titles": ["C1"], "done": 1, "wrote": 1}
    assert (job.status, job.done) == ("done", 3)


def test_memory_is_bounded_by_the_batch_not_the_file(alice):
    """200 conversations of 10 messages of 6 KB (12 MB of text, 6 MB of it replies rendered): one batch at a time."""
    rng = random.Random(0)
    start = datetime(2024, 5, 6, tzinfo=UTC)
    conversations = [
        ParsedConversation(
            title=f"Conversation {c}",
            created=start,
            messages=tuple(
                ParsedMessage(role="user" if i % 2 == 0 else "assistant", content=rng.randbytes(3000).hex())
                for i in range(10)
            ),
        )
        for c in range(200)
    ]
    history_bytes = 200 * 10 * 6000
    tracemalloc.start()
    try:
        assert import_jobs.conversations_import(owner=alice, conversations=conversations) == 200
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert Message.objects.filter(conversation__owner=alice).count() == 2000
    # Rendering every reply before writing holds 6 MB of HTML and 2,000 unsaved messages at once.
    assert peak < history_bytes / 6, f"peak {peak / 1e6:.1f} MB"


# Taken up again after a restart


def test_an_orphaned_job_is_taken_up_and_completes_without_duplicating_conversations(alice, monkeypatch, _media_root):
    monkeypatch.setattr(import_jobs, "BATCH_ROWS", 1)
    job = make_job(alice, conversations_titled("C1", "C2", "C3", "C4"))
    path = _media_root / job.source.name
    render = rendering.render_markdown
    dying = True

    def die_in_the_third(markdown: str) -> str:
        if dying and markdown == "Reply of C3":
            raise ProcessDied
        return render(markdown)

    monkeypatch.setattr(rendering, "render_markdown", die_in_the_third)
    with pytest.raises(ProcessDied):
        import_jobs.import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.attempts) == ("running", 2, 4, 1)
    assert import_jobs.import_job_claim() is None  # its heartbeat is fresh: its worker may be alive

    dying = False
    orphan(job)
    taken = import_jobs.import_job_claim()
    assert taken is not None and (taken.pk, taken.attempts, taken.status) == (job.pk, 2, "running")
    job = import_jobs.import_job_process(taken)

    assert (job.status, job.done, job.total, job.error_text) == ("done", 4, 4, "")
    titles = sorted(Conversation.objects.filter(owner=alice).values_list("title", flat=True))
    assert titles == ["C1", "C2", "C3", "C4"]
    assert Message.objects.filter(conversation__owner=alice).count() == 4 * 6
    assert not path.exists() and ImportJob.objects.get(pk=job.pk).source == ""


def test_a_running_job_with_a_fresh_heartbeat_is_left_to_its_worker(alice):
    job = make_job(alice, chatgpt_bytes())
    ImportJob.objects.filter(pk=job.pk).update(status="running", heartbeat_at=timezone.now(), attempts=1)
    assert import_jobs.import_job_claim() is None
    assert import_jobs.import_job_run(job_id=job.pk).status == "running"
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    ("done", "reason"),
    [
        (0, "Nothing was imported."),
        (1, "1 of 3 conversations were imported; the others were not."),
    ],
)
def test_a_job_whose_upload_is_gone_is_failed_with_the_reason(alice, _media_root, done, reason):
    job = make_job(alice, chatgpt_bytes())
    (_media_root / job.source.name).unlink()
    orphan(job, done=done, total=3)
    job = import_jobs.import_job_run(job_id=job.pk)
    assert (job.status, job.done) == ("failed", done)
    assert job.error_text == f"The uploaded file is no longer on the server, so the import could not go on. {reason}"
    assert ImportJob.objects.get(pk=job.pk).source == ""


def test_a_job_cut_off_too_often_is_failed_and_its_upload_deleted(alice, _media_root):
    job = make_job(alice, chatgpt_bytes())
    path = _media_root / job.source.name
    orphan(job, attempts=import_jobs.MAX_ATTEMPTS, done=0, total=1)
    job = import_jobs.import_job_run(job_id=job.pk)
    assert (job.status, job.attempts) == ("failed", import_jobs.MAX_ATTEMPTS + 1)
    assert job.error_text == "The import was cut off 3 times by a restart and was given up. Nothing was imported."
    assert not path.exists() and not Conversation.objects.exists()


def test_a_job_whose_last_batch_committed_before_the_process_died_is_ended_done(alice, _media_root):
    job = make_job(alice, chatgpt_bytes())
    path = _media_root / job.source.name
    orphan(job, done=1, total=1, format="chatgpt")
    job = import_jobs.import_job_run(job_id=job.pk)
    assert (job.status, job.done) == ("done", 1)
    assert not path.exists() and not Conversation.objects.exists()  # nothing imported twice


def test_a_worker_whose_job_was_taken_over_stops_writing(alice, _media_root):
    job = make_job(alice, chatgpt_bytes())
    mine = import_jobs.import_job_claim(job_id=job.pk)
    assert mine is not None
    # Presumed dead, it lost the job to another worker, which took it up again.
    ImportJob.objects.filter(pk=job.pk).update(attempts=2, heartbeat_at=timezone.now())
    import_jobs.import_job_process(mine)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.done) == ("running", 2, 0)
    assert not Conversation.objects.exists() and (_media_root / job.source.name).exists()


def test_uploads_left_by_ended_jobs_are_deleted_by_the_sweep(alice, bob, _media_root):
    ended = make_job(alice, chatgpt_bytes())
    ImportJob.objects.filter(pk=ended.pk).update(status="failed")
    waiting = make_job(bob, chatgpt_bytes())
    assert import_jobs.import_uploads_sweep() == 1
    assert stored_files(_media_root) == [_media_root / waiting.source.name]
    assert ImportJob.objects.get(pk=ended.pk).source == ""


def test_a_failed_job_deletes_its_upload(alice, _media_root):
    job = make_job(alice, b"{not json")
    path = _media_root / job.source.name
    job = import_jobs.import_job_run(job_id=job.pk)
    assert job.status == "failed" and not path.exists()


# The worker thread


@pytest.mark.django_db(transaction=True)
def test_the_worker_takes_up_waiting_and_orphaned_jobs_oldest_first_one_at_a_time(alice, bob, carol, monkeypatch):
    orphaned = make_job(carol, conversations_titled("Carol's"))
    orphan(orphaned)
    waiting = [make_job(alice, conversations_titled("Alice's")), make_job(bob, conversations_titled("Bob's"))]
    process = import_jobs.import_job_process
    events: list[tuple[str, int]] = []

    def recorded(job):
        events.append(("start", job.pk))
        try:
            return process(job)
        finally:
            events.append(("end", job.pk))

    monkeypatch.setattr(import_jobs, "import_job_process", recorded)
    worker = import_jobs.import_worker_start()  # as when the process starts: nobody created these jobs here
    assert worker.daemon and import_jobs.import_worker_start() is worker  # one worker per process
    wait_until(lambda: ImportJob.objects.filter(status="done").count() == 3, timeout_s=60, message="jobs not done")
    # The last job is marked done inside import_job_process, just before its "end" is recorded.
    wait_until(lambda: len(events) == 6, timeout_s=10, message="the last job's end not recorded")

    order = [orphaned.pk, *(job.pk for job in waiting)]
    assert events == [(step, pk) for pk in order for step in ("start", "end")]
    assert sorted(Conversation.objects.values_list("title", flat=True)) == ["Alice's", "Bob's", "Carol's"]


@pytest.mark.parametrize(("niceness", "lowered"), [(10, [15]), (16, [19]), (0, [])])
def test_the_worker_runs_each_job_in_a_child_process_whose_cpu_priority_it_lowers_as_it_starts_it(
    alice, settings, monkeypatch, niceness, lowered
):
    # On a small machine the child competes with the server for the cores: others' sends waited up to
    # 267 ms during a 47 MB import at the same priority, at most 183 ms at niceness 10 (bench/load.py).
    # Lowered as it starts: its own start (Django's setup, before its command runs) yields too.
    settings.CHAT_IMPORT_SUBPROCESS = True
    settings.CHAT_IMPORT_NICENESS = niceness
    job = make_job(alice, conversations_titled("Later"))
    events = []

    class Child:
        pid = 4242

        def __init__(self, command, **kwargs):
            events.append(("started", command, kwargs["cwd"]))

        def wait(self):
            events.append(("waited",))
            return 0

    monkeypatch.setattr(import_jobs.subprocess, "Popen", Child)
    monkeypatch.setattr(import_jobs.os, "getpriority", lambda which, who: 5)  # this process's own niceness
    monkeypatch.setattr(import_jobs.os, "setpriority", lambda *args: events.append(("niced", *args)))
    assert import_jobs._Worker()._run_one()

    started, *niced, waited = events
    assert started[0] == "started" and started[1][-2:] == ["import_job_run", str(job.pk)]
    assert started[2] == settings.BASE_DIR
    assert niced == [("niced", os.PRIO_PROCESS, 4242, n) for n in lowered]  # before the worker waits for it
    assert waited == ("waited",)


@pytest.mark.parametrize(("niceness", "lowered"), [(7, [7]), (0, [])])
def test_the_import_command_lowers_its_own_cpu_priority_before_it_imports(alice, monkeypatch, niceness, lowered):
    job = make_job(alice, conversations_titled("Niced"))
    calls = []
    monkeypatch.setattr(
        import_job_run.os, "nice", lambda increment: calls.append((increment, job_status(job))) or increment
    )
    call_command("import_job_run", f"--niceness={niceness}", str(job.pk), stdout=StringIO())
    assert calls == [(n, "pending") for n in lowered]  # before the job is taken up
    assert job_status(job) == "done"


def job_status(job: ImportJob) -> str:
    return ImportJob.objects.values_list("status", flat=True).get(pk=job.pk)


@pytest.mark.parametrize(
    ("argv", "environ", "serves"),
    [
        (["/srv/chat/.venv/bin/daphne", "-b", "0.0.0.0", "chatsite.asgi:application"], {}, True),
        (["/usr/lib/python3/site-packages/daphne/__main__.py", "chatsite.asgi:application"], {}, True),
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["manage.py", "runserver"], {}, False),  # the autoreloader's parent serves nothing
        (["manage.py", "migrate"], {}, False),
        (["manage.py", "shell"], {"RUN_MAIN": "true"}, False),
        (["/srv/chat/.venv/bin/pytest", "tests"], {}, False),
    ],
)
def test_the_worker_starts_only_in_a_process_that_serves_the_site(monkeypatch, argv, environ, serves):
    started = []
    monkeypatch.setattr(import_jobs, "import_worker_start", lambda: started.append(True) or "worker")
    assert import_jobs.import_worker_start_if_serving(argv, environ) == ("worker" if serves else None)
    assert started == ([True] if serves else [])


@pytest.mark.django_db(transaction=True)
def test_a_daphne_process_takes_up_the_job_left_waiting_when_it_starts(alice, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "var" / "media"  # where the server's CHAT_VAR_DIR puts its uploads
    job = make_job(alice, conversations_titled("Before the restart"))
    with DaphneServer(env={"CHAT_VAR_DIR": str(tmp_path / "var")}) as server:
        try:
            wait_until(lambda: ImportJob.objects.filter(pk=job.pk, status="done").exists(), timeout_s=60)
        except TimeoutError:
            raise AssertionError(f"the server did not import the job:\n{server.log()[-3000:]}") from None
    assert list(Conversation.objects.filter(owner=alice).values_list("title", flat=True)) == ["Before the restart"]
    assert not (settings.MEDIA_ROOT / job.source.name).exists()
