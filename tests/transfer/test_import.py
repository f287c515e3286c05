"""Import: reading both formats, the write in short batches, the job and its progress.

The worker thread, taking jobs up again after a restart and one import per
user are in test_import_worker.py.
"""

import io
import json
import threading
import zipfile
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from conversations import organizing, selectors
from conversations.models import Conversation, Folder, Message
from tests.conversations.history import make_conversation
from tests.waiting import wait_until
from transfer import export, importers
from transfer import jobs as import_jobs
from transfer.importers import ImportFormatError, ParsedConversation, ParsedMessage
from transfer.models import ImportJob

pytestmark = pytest.mark.django_db

MAX_BYTES = 1_000_000
T0 = 1740821415.5  # 2025-03-01T09:30:15.5Z


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def node(node_id, parent, children, role=None, content=None, create_time=None, **message_fields):
    message = None
    if role is not None:
        message = {"id": node_id, "author": {"role": role}, "content": content, "create_time": create_time}
        message.update(message_fields)
    return {"id": node_id, "message": message, "parent": parent, "children": children}


def text(*parts):
    return {"content_type": "text", "parts": list(parts)}


def chatgpt_conversation(title="Kids in Lisbon"):
    """A ChatGPT conversation as its export writes it: the shown branch ends at a2; a1-old is a regenerated reply."""
    image = {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-abc", "width": 10}
    mapping = [
        node("root", None, ["sys"]),
        node("sys", "root", ["u1"], "system", text(""), None),  # ChatGPT's hidden, empty system message
        node("u1", "sys", ["a1-old", "a1"], "user", text("What to see?"), T0 + 5),
        node("a1-old", "u1", [], "assistant", text("An answer on the other branch."), T0 + 9),
        node("a1", "u1", ["sys2"], "assistant", text("See the **Alfama**."), T0 + 10,
             metadata={"model_slug": "gpt-4o"}),
        node("sys2", "a1", ["u2"], "system", text("The kids are 5 and 8."), None),
        node("u2", "sys2", ["code"], "user", {"content_type": "multimodal_text", "parts": ["Is this nice?", image]},
             T0 + 20),
        node("code", "u2", ["tool"], "assistant", {"content_type": "code", "language": "python", "text": "1+1"},
             T0 + 21),
        node("tool", "code", ["a2"], "tool", {"content_type": "execution_output", "text": "2"}, T0 + 22),
        node("a2", "tool", [], "assistant", text("Yes, ", "very."), T0 + 30),
    ]  # fmt: skip
    return {
        "title": title,
        "create_time": T0,
        "update_time": T0 + 30,
        "mapping": {entry["id"]: entry for entry in mapping},
        "current_node": "a2",
        "id": "c-1",
    }


def chatgpt_bytes(*conversations) -> bytes:
    return json.dumps(list(conversations) or [chatgpt_conversation()]).encode()


# ChatGPT's conversations.json


def test_chatgpt_export_follows_the_branch_current_node_picks():
    parsed = importers.parse_export(chatgpt_bytes(), max_bytes=MAX_BYTES)
    assert parsed.format == "chatgpt"
    [conversation] = parsed.conversations
    assert conversation.title == "Kids in Lisbon"
    assert conversation.created == datetime(2025, 3, 1, 9, 30, 15, 500000, tzinfo=UTC)
    assert [(m.role, m.content) for m in conversation.messages] == [
        ("user", "What to see?"),
        ("assistant", "See the **Alfama**."),
        ("system", "The kids are 5 and 8."),
        ("user", "Is this nice?\n[image not imported]"),
        ("assistant", "[code not imported]"),
        ("assistant", "Yes, \nvery."),
    ]
    assert conversation.messages[1].model_id == "gpt-4o"
    assert all(m.status == "complete" for m in conversation.messages)


def test_chatgpt_parts_that_are_not_text_and_tool_messages_are_noted():
    parsed = importers.parse_export(chatgpt_bytes(), max_bytes=MAX_BYTES)
    assert parsed.notes == ("“Kids in Lisbon”: not imported: 1 × code, 1 × image, 1 × tool message.",)


def test_chatgpt_times_missing_or_going_backwards_follow_the_message_before():
    conversation = chatgpt_conversation()
    conversation["mapping"]["a2"]["message"]["create_time"] = T0 + 1  # before u2
    [parsed] = importers.parse_export(chatgpt_bytes(conversation), max_bytes=MAX_BYTES).conversations
    times = [m.created for m in parsed.messages]
    assert times[2] == times[1]  # the system message had none
    assert times == sorted(times) and times[-1] == times[-2]


def test_chatgpt_conversation_without_title_or_times_still_imports(alice):
    conversation = chatgpt_conversation(title=None)
    conversation["create_time"] = conversation["update_time"] = None
    for entry in conversation["mapping"].values():
        if entry["message"]:
            entry["message"]["create_time"] = None
    parsed = importers.parse_export(chatgpt_bytes(conversation), max_bytes=MAX_BYTES)
    import_jobs.conversations_import(owner=alice, conversations=parsed.conversations)
    imported = Conversation.objects.get(owner=alice)
    assert imported.title == "What to see?"
    assert imported.messages.count() == 6


def test_chatgpt_zip_is_read_like_its_conversations_json():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("chat.html", "<html></html>")
        archive.writestr("conversations.json", chatgpt_bytes())
    parsed = importers.parse_export(buffer.getvalue(), max_bytes=MAX_BYTES)
    assert parsed.format == "chatgpt" and len(parsed.conversations) == 1


# Files that cannot be read


def site_document(**changes):
    message = {"role": "user", "content": "Hi", "created": "2025-03-01T09:30:15Z", "status": "complete"}
    conversation = {"title": "T", "created": "2025-03-01T09:30:15Z", "messages": [message]}
    document = {"format": "chatsite.conversations", "version": 1, "conversations": [conversation]}
    for path, value in changes.items():
        target = document
        *parents, last = path.split(".")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[last] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "The file is not valid JSON."),
        (b"\xff\xfe\x00garbage", "The file is not valid JSON."),
        (b'{"conversations": []}', "neither an export of this site nor ChatGPT"),
        (b'[{"title": "no mapping"}]', "neither an export of this site nor ChatGPT"),
        (b"PK\x03\x04 broken zip", "The ZIP file is damaged"),
        (site_document(version=2), "format version 2; this site reads version 1"),
        (site_document(conversations={}), "The export has no list of conversations."),
        (site_document(**{"conversations.0.messages": None}), "Conversation 1 has no list of messages."),
        (site_document(**{"conversations.0.messages.0.role": "robot"}), "Conversation 1, message 1: role must be"),
        (site_document(**{"conversations.0.messages.0.content": 5}), "message 1: content must be text"),
        (site_document(**{"conversations.0.messages.0.created": "yesterday"}), "created must be an ISO 8601 time"),
        (site_document(**{"conversations.0.messages.0.status": "done"}), "status must be one of"),
        (site_document(**{"conversations.0.messages.0.prompt_tokens": -1}), "prompt_tokens must be a whole number"),
        (site_document(**{"conversations.0.archived": "yes"}), "archived must be true or false"),
        (site_document(**{"conversations.0.temperature": 2.5}), "temperature must be a number from 0 to 2"),
        (site_document(**{"conversations.0.temperature": "hot"}), "temperature must be a number from 0 to 2"),
        (site_document(**{"conversations.0.messages.0.tokens_estimated": 1}), "tokens_estimated must be true or false"),
        (site_document(**{"conversations.0.title": ["x"]}), "Conversation 1: title must be text"),
        (chatgpt_bytes({**chatgpt_conversation(), "current_node": "nope"}), "current_node does not name a message"),
        (chatgpt_bytes({**chatgpt_conversation(), "mapping": {}}), "has no message mapping"),
        (chatgpt_bytes(chatgpt_conversation(), {"title": "no mapping"}), "Conversation 2 has no message mapping"),
        (chatgpt_bytes(chatgpt_conversation(), "text"), "Conversation 2 is not an object."),
    ],
)
def test_unreadable_file_raises_a_message_a_person_can_act_on(data, message):
    with pytest.raises(ImportFormatError, match=message.replace("(", r"\(").replace("?", r"\?")):
        importers.parse_export(data, max_bytes=MAX_BYTES)


def test_chatgpt_parent_links_that_loop_are_refused():
    conversation = chatgpt_conversation()
    conversation["mapping"]["root"]["parent"] = "a2"
    with pytest.raises(ImportFormatError, match="form a loop"):
        importers.parse_export(chatgpt_bytes(conversation), max_bytes=MAX_BYTES)


def test_zip_without_conversations_json_or_unpacking_too_large_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("other.json", "[]")
    with pytest.raises(ImportFormatError, match=r"holds no conversations\.json"):
        importers.parse_export(buffer.getvalue(), max_bytes=MAX_BYTES)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", b"[" + b" " * 5000 + b"]")
    with pytest.raises(ImportFormatError, match="unpacks to more than 1000 bytes"):
        importers.parse_export(buffer.getvalue(), max_bytes=1000)


def test_site_reply_exported_while_streaming_is_imported_as_interrupted():
    data = site_document(**{"conversations.0.messages.0.status": "streaming"})
    parsed = importers.parse_export(data, max_bytes=MAX_BYTES)
    assert parsed.conversations[0].messages[0].status == "interrupted"
    assert "imported as interrupted" in parsed.notes[0]


def test_nul_characters_are_dropped_for_postgresql():
    data = site_document(**{"conversations.0.messages.0.content": "a\x00b"})
    parsed = importers.parse_export(data, max_bytes=MAX_BYTES)
    assert parsed.conversations[0].messages[0].content == "ab"


# Writing the import


def parsed_conversation(title="Imported", persona_slug="", count=2) -> ParsedConversation:
    start = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    messages = tuple(
        ParsedMessage(
            role="user" if i % 2 == 0 else "assistant",
            content=f"**message {i}**",
            created=start.replace(second=10 + i),
            prompt_tokens=i,
        )
        for i in range(count)
    )
    return ParsedConversation(
        title=title, created=start, updated=start.replace(minute=9), persona_slug=persona_slug, messages=messages
    )


def test_import_writes_each_conversation_as_one_shown_path(alice):
    assert import_jobs.conversations_import(owner=alice, conversations=[parsed_conversation(count=4)]) == 1
    conversation = Conversation.objects.get(owner=alice)
    assert (conversation.title, conversation.title_source, conversation.persona) == ("Imported", "user", None)
    assert conversation.created_at == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert conversation.updated_at == datetime(2024, 5, 6, 7, 9, 9, 123456, tzinfo=UTC)
    messages = list(selectors.message_list_for_conversation(conversation=conversation))
    assert [m.content for m in messages] == [f"**message {i}**" for i in range(4)]
    assert [m.parent_id for m in messages] == [None] + [m.pk for m in messages[:-1]]
    assert all(m.is_current and m.status == "complete" for m in messages)
    assert [m.created_at.second for m in messages] == [10, 11, 12, 13]
    assert messages[0].content_html == "**message 0**"  # user messages show as typed, not as Markdown
    assert messages[1].content_html == "<p><strong>message 1</strong></p>\n"


def test_import_gives_the_active_persona_with_the_exported_slug(alice, make_persona):
    travel = make_persona(slug="travel")
    make_persona(slug="retired", is_active=False)
    import_jobs.conversations_import(
        owner=alice,
        conversations=[
            parsed_conversation("A", "travel"),
            parsed_conversation("B", "retired"),
            parsed_conversation("C", "gone"),
        ],
    )
    personas = dict(Conversation.objects.filter(owner=alice).values_list("title", "persona"))
    assert personas == {"A": travel.pk, "B": None, "C": None}


def test_a_failing_batch_writes_none_of_its_conversations(alice, monkeypatch):
    rows_update = import_jobs.rows_update

    def fail_on_the_last_write(model, field_names, rows):
        if model is Message:  # after the conversations and messages are inserted
            raise RuntimeError("disk full")
        rows_update(model, field_names, rows)

    monkeypatch.setattr(import_jobs, "rows_update", fail_on_the_last_write)
    with pytest.raises(RuntimeError):
        # Both fit in one batch: neither is written, not even in part.
        import_jobs.conversations_import(owner=alice, conversations=[parsed_conversation(), parsed_conversation()])
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_a_batchs_values_are_prepared_before_its_transaction_begins(alice, monkeypatch):
    # Its transaction holds the database's writer for the statements alone: preparing the values in it
    # took two thirds of its time, and other users' writes waited (bench/README.md).
    depths: dict[str, list[int]] = {"prepare": [], "insert": []}
    for insert in (import_jobs._conversations_insert, import_jobs._messages_insert):
        for step in depths:
            run = getattr(insert, step)

            def recorded(argument, step=step, run=run):
                depths[step].append(len(connection.savepoint_ids))  # atomic blocks open
                return run(argument)

            monkeypatch.setattr(insert, step, recorded)
    import_jobs.conversations_import(owner=alice, conversations=[parsed_conversation(str(i)) for i in range(3)])
    assert len(depths["prepare"]) == len(depths["insert"]) == 2  # the conversations, the messages: one batch
    assert max(depths["prepare"]) < min(depths["insert"])
    assert Message.objects.filter(conversation__owner=alice).count() == 6


def test_a_failure_in_conversation_k_keeps_conversations_1_to_k_minus_1(alice, monkeypatch):
    monkeypatch.setattr(import_jobs, "BATCH_ROWS", 3)  # a conversation and its two messages: one per batch
    insert = import_jobs._messages_insert.insert
    batches = []

    def fail_in_the_third(prepared):
        batches.append(len(prepared.instances))
        if len(batches) == 3:
            raise RuntimeError("disk full")
        return insert(prepared)

    monkeypatch.setattr(import_jobs._messages_insert, "insert", fail_in_the_third)
    reported = []
    with pytest.raises(RuntimeError):
        import_jobs.conversations_import(
            owner=alice, conversations=[parsed_conversation(str(i)) for i in range(1, 6)], on_batch=reported.append
        )
    assert sorted(Conversation.objects.filter(owner=alice).values_list("title", flat=True)) == ["1", "2"]
    assert Message.objects.count() == 4
    assert reported == [1, 2, 3]  # the third was counted inside its transaction, and rolled back with it


def test_import_reports_progress_per_batch_of_whole_conversations(alice, monkeypatch):
    monkeypatch.setattr(import_jobs, "BATCH_ROWS", 6)  # two conversations of three rows
    reported = []
    import_jobs.conversations_import(
        owner=alice, conversations=[parsed_conversation(str(i)) for i in range(5)], on_batch=reported.append
    )
    assert reported == [2, 4, 5]


def test_a_batch_also_ends_at_batch_chars_of_text(alice, monkeypatch):
    monkeypatch.setattr(import_jobs, "BATCH_CHARS", 40)  # a conversation's text is 2 × 13 characters
    reported = []
    import_jobs.conversations_import(
        owner=alice, conversations=[parsed_conversation(str(i)) for i in range(3)], on_batch=reported.append
    )
    assert reported == [1, 2, 3]


@pytest.mark.django_db(transaction=True)
def test_each_transaction_holds_whole_conversations_and_at_most_batch_rows(alice, monkeypatch):
    """Counted at each commit: a transaction never holds part of a conversation, nor more than BATCH_ROWS rows
    unless it holds one conversation alone."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    monkeypatch.setattr(import_jobs, "BATCH_ROWS", 10)
    sizes = [3, 3, 2, 30, 4, 4, 1, 5]
    batch_write = import_jobs._batch_write
    seen: list[tuple[int, int]] = []

    def committed_counts() -> tuple[int, int]:
        try:  # Another connection: it sees only what was committed.
            return Conversation.objects.count(), Message.objects.count()
        finally:
            connection.close()

    def counting_batch_write(*args, **kwargs):
        written = batch_write(*args, **kwargs)
        with ThreadPoolExecutor(1) as other:
            seen.append(other.submit(committed_counts).result())
        return written

    monkeypatch.setattr(import_jobs, "_batch_write", counting_batch_write)
    conversations = [parsed_conversation(f"C{i}", count=n) for i, n in enumerate(sizes)]
    assert import_jobs.conversations_import(owner=alice, conversations=conversations) == len(sizes)
    monkeypatch.undo()

    steps = [(c - c0, m - m0) for (c0, m0), (c, m) in zip([(0, 0), *seen], seen, strict=False)]
    assert [c for c, _ in steps] == [2, 1, 1, 2, 2]  # rows 4+4 | 3 | 31 alone | 5+5 | 2+6
    done = 0
    for conversations_added, messages_added in steps:
        assert messages_added == sum(sizes[done : done + conversations_added])  # whole conversations only
        assert conversations_added + messages_added <= 10 or conversations_added == 1
        done += conversations_added


def test_round_trip_export_import_export_gives_the_same_conversations(alice, bob, make_persona):
    persona = make_persona(slug="travel")
    lisbon = make_conversation(alice, persona, title="Lisbon")
    make_conversation(alice, persona, title="Archived one", archived=True)
    travel = make_conversation(alice, None, title="旅行")
    organizing.conversation_set_pinned(conversation=lisbon, pinned=True)
    Conversation.objects.filter(pk=lisbon.pk).update(temperature=0.7)
    organizing.conversation_move(conversation=travel, folder=organizing.folder_get_or_create(owner=alice, name="Trips"))
    organizing.folder_get_or_create(owner=bob, name="Trips")  # bob's own folder of that name is reused

    def export_of(user) -> dict:
        def pairs():
            return selectors.message_iter_for_export(conversations=selectors.conversation_iter_for_export(user=user))

        chunks = export.archive_chunks(json_pairs=pairs(), markdown_pairs=pairs(), exported_at=datetime.now(UTC))
        data = b"".join(chunks)
        return json.loads(zipfile.ZipFile(io.BytesIO(data)).read("conversations.json"))

    first = export_of(alice)
    parsed = importers.parse_export(json.dumps(first).encode(), max_bytes=MAX_BYTES)
    assert import_jobs.conversations_import(owner=bob, conversations=parsed.conversations) == 3
    second = export_of(bob)

    def without_ids(document):
        return [
            {**c, "id": None, "messages": [{**m, "id": None} for m in c["messages"]]} for c in document["conversations"]
        ]

    assert without_ids(second) == without_ids(first)
    assert [(c["title"], c["pinned"], c["folder"], c["temperature"]) for c in second["conversations"]] == [
        ("Lisbon", True, None, 0.7),
        ("Archived one", False, None, None),
        ("旅行", False, "Trips", None),
    ]
    assert Folder.objects.filter(owner=bob).count() == 1
    assert {c["id"] for c in second["conversations"]}.isdisjoint(c["id"] for c in first["conversations"])


def test_a_users_part_of_an_im_group_chat_imports_as_their_own_conversation_titled_by_their_question(alice):
    document = site_document(**{"conversations.0.group_chat": True, "conversations.0.title": ""})

    parsed = importers.parse_export(document, max_bytes=MAX_BYTES)
    import_jobs.conversations_import(owner=alice, conversations=parsed.conversations)

    conversation = Conversation.objects.get(owner=alice)
    assert conversation.title == "Hi"
    assert [m.asked_by_id for m in conversation.messages.all()] == [alice.pk]


def test_estimated_token_counts_stay_marked_through_export_and_import(alice, bob, persona):
    conversation = make_conversation(alice, persona)
    reply = conversation.messages.get(is_current=True, finish_reason="stop")
    Message.objects.filter(pk=reply.pk).update(prompt_tokens=40, completion_tokens=900, tokens_estimated=True)
    pairs = selectors.message_iter_for_export(conversations=selectors.conversation_iter_for_export(user=alice))
    data = b"".join(export.archive_chunks(json_pairs=pairs, markdown_pairs=[], exported_at=datetime.now(UTC)))
    document = zipfile.ZipFile(io.BytesIO(data)).read("conversations.json")
    assert [m["tokens_estimated"] for m in json.loads(document)["conversations"][0]["messages"]] == [
        False, True, False, False,
    ]  # fmt: skip

    parsed = importers.parse_export(document, max_bytes=MAX_BYTES)
    assert [m.tokens_estimated for m in parsed.conversations[0].messages] == [False, True, False, False]
    import_jobs.conversations_import(owner=bob, conversations=parsed.conversations)
    imported = Message.objects.filter(conversation__owner=bob).order_by("created_at", "id")
    assert [(m.tokens_estimated, m.prompt_tokens, m.completion_tokens) for m in imported] == [
        (False, None, None), (True, 40, 900), (False, None, None), (False, None, None),
    ]  # fmt: skip


def test_a_file_without_tokens_estimated_imports_counts_as_reported():
    """Files exported before the field existed: their token counts came from the upstream."""
    data = site_document(**{"conversations.0.messages.0.prompt_tokens": 5})
    [message] = importers.parse_export(data, max_bytes=MAX_BYTES).conversations[0].messages
    assert (message.prompt_tokens, message.tokens_estimated) == (5, False)


# The job


def make_job(owner, content: bytes, name="conversations.json") -> ImportJob:
    return ImportJob.objects.create(
        owner=owner, source=SimpleUploadedFile(name, content), filename=name, size_bytes=len(content)
    )


def test_job_run_imports_the_file_records_notes_and_deletes_the_upload(alice, _media_root):
    job = make_job(alice, chatgpt_bytes())
    path = _media_root / job.source.name
    assert path.exists()
    job = import_jobs.import_job_run(job_id=job.pk)
    assert (job.status, job.format, job.total, job.done) == ("done", "chatgpt", 1, 1)
    assert "1 × image" in job.notes and job.finished_at is not None and job.error_text == ""
    assert not path.exists() and job.source.name == ""
    assert Conversation.objects.get(owner=alice).messages.count() == 6


def test_job_run_of_a_malformed_file_fails_with_the_reason_and_imports_nothing(alice):
    job = import_jobs.import_job_run(job_id=make_job(alice, site_document(version=7)).pk)
    assert job.status == "failed" and job.done == 0
    assert job.error_text == "This export has format version 7; this site reads version 1. Nothing was imported."
    assert not Conversation.objects.exists()


def test_job_run_failing_while_writing_imports_nothing(alice, monkeypatch):
    monkeypatch.setattr(
        import_jobs._messages_insert, "insert", lambda prepared: (_ for _ in ()).throw(RuntimeError("boom"))
    )
    job = import_jobs.import_job_run(job_id=make_job(alice, chatgpt_bytes()).pk)
    assert job.status == "failed" and job.done == 0
    assert job.error_text == "The import failed unexpectedly and nothing was imported. Try again later."
    assert not Conversation.objects.exists()


def test_job_failing_in_conversation_k_keeps_the_ones_before_and_says_how_many(alice, monkeypatch, _media_root):
    monkeypatch.setattr(import_jobs, "BATCH_ROWS", 1)  # one conversation per batch
    render = import_jobs.message_content_html

    def fail_in_the_third(*, role, content):
        if content.startswith("Third"):
            raise RuntimeError("renderer crashed")
        return render(role=role, content=content)

    monkeypatch.setattr(import_jobs, "message_content_html", fail_in_the_third)
    conversations = [chatgpt_conversation(f"C{i}") for i in range(1, 5)]
    conversations[2]["mapping"]["a2"]["message"]["content"] = text("Third conversation's last reply")
    job = make_job(alice, chatgpt_bytes(*conversations))
    path = _media_root / job.source.name

    job = import_jobs.import_job_run(job_id=job.pk)

    assert (job.status, job.done, job.total) == ("failed", 2, 4)
    assert job.error_text == (
        "The import failed unexpectedly. 2 of 4 conversations were imported; the others were not."
    )
    assert sorted(Conversation.objects.filter(owner=alice).values_list("title", flat=True)) == ["C1", "C2"]
    assert Message.objects.filter(conversation__owner=alice).count() == 2 * 6  # whole conversations
    assert ImportJob.objects.get(pk=job.pk).done == 2 and not path.exists()


def test_job_run_writes_progress_per_batch_not_per_message(alice, monkeypatch, write_counter):
    monkeypatch.setattr(import_jobs, "BATCH_ROWS", 14)  # two conversations of 1 + 6 rows
    job = make_job(alice, chatgpt_bytes(*[chatgpt_conversation(f"C{i}") for i in range(5)]))
    write_counter.clear()
    import_jobs.import_job_run(job_id=job.pk)
    job_updates = [sql for sql, _ in write_counter if sql.startswith('UPDATE "transfer_importjob"')]
    # Claimed; format and total; done after each of the 3 batches; ended; the upload's name blanked.
    assert len(job_updates) == 1 + 1 + 3 + 1 + 1
    assert ImportJob.objects.get(pk=job.pk).done == 5


def test_job_run_runs_a_job_once(alice):
    job = make_job(alice, chatgpt_bytes())
    import_jobs.import_job_run(job_id=job.pk)
    again = import_jobs.import_job_run(job_id=job.pk)
    assert again.status == "done" and Conversation.objects.count() == 1


@pytest.mark.parametrize(
    ("upload", "code"),
    [
        (SimpleUploadedFile("conversations.json", b"x" * 2001), "too_large"),
        (SimpleUploadedFile("conversations.json", b""), "empty"),
        (SimpleUploadedFile("photo.png", b"[]"), "file_type"),
    ],
)
def test_job_create_refuses_unusable_uploads(alice, settings, upload, code):
    settings.CHAT_IMPORT_MAX_BYTES = 2000
    with pytest.raises(ValidationError) as error:
        import_jobs.import_job_create(owner=alice, upload=upload)
    assert error.value.code == code and not ImportJob.objects.exists()


def test_job_create_keeps_a_long_file_name_for_the_page_and_a_short_one_on_disk(alice, _media_root):
    name = "conversations " + "x" * 230 + ".json"
    job = import_jobs.import_job_create(owner=alice, upload=SimpleUploadedFile(name, b"[]"))
    assert job.filename == name[:255] and len(job.source.name) <= 100
    assert (_media_root / job.source.name).read_bytes() == b"[]"


@pytest.mark.django_db(transaction=True)
def test_job_create_wakes_the_worker_thread_which_imports_after_commit(alice, monkeypatch):
    threads: list[threading.Thread] = []
    start = import_jobs.start_import_thread
    monkeypatch.setattr(import_jobs, "start_import_thread", lambda job_id: threads.append(start(job_id)))
    job = import_jobs.import_job_create(
        owner=alice, upload=SimpleUploadedFile("chatgpt.zip", _zipped(chatgpt_bytes()), content_type="application/zip")
    )
    [thread] = threads
    assert thread.daemon and thread.name == "import-worker"
    wait_until(lambda: ImportJob.objects.filter(pk=job.pk, status="done").exists(), message="the job did not end")
    job.refresh_from_db()
    assert (job.status, job.done, job.filename) == ("done", 1, "chatgpt.zip")
    assert Conversation.objects.filter(owner=alice).count() == 1


def _zipped(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", data)
    return buffer.getvalue()
