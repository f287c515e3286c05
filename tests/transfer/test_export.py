"""Export: the JSON schema, Markdown and text documents, safe file names, the streamed ZIP and its reads."""

import io
import json
import random
import struct
import uuid
import zipfile
import zlib
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from isal import isal_zlib

from conversations import organizing, selectors, services
from conversations.models import Conversation, Folder, Message
from tests.conversations.history import START, make_conversation
from transfer import export

pytestmark = pytest.mark.django_db

EXPORTED_AT = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def conversation(alice, make_persona):
    persona = make_persona(name="Travel guide", slug="travel", avatar="🧭", system_prompt="Be a guide.")
    return Conversation.objects.select_related("persona__model").get(pk=make_conversation(alice, persona).pk)


def shown(conversation):
    return list(selectors.message_list_for_conversation(conversation=conversation))


# JSON


def test_json_export_follows_the_documented_schema(conversation):
    document = json.loads(export.conversation_json(conversation, shown(conversation), exported_at=EXPORTED_AT))
    assert document["format"] == "chatsite.conversations" and document["version"] == 1
    assert document["exported_at"] == "2025-04-01T12:00:00Z"
    [record] = document["conversations"]
    assert set(record) == {
        "id", "title", "created", "updated", "archived", "pinned", "folder", "temperature", "persona", "messages"
    }  # fmt: skip
    assert record["id"] == str(conversation.public_id) and record["title"] == "Trip to Lisbon"
    assert (record["created"], record["updated"]) == ("2025-03-01T09:30:15.123456Z", "2025-03-01T09:34:15.123456Z")
    assert record["archived"] is False and record["pinned"] is False and record["folder"] is None
    assert record["temperature"] is None
    assert record["persona"] == {
        "name": "Travel guide",
        "slug": "travel",
        "avatar": "🧭",
        "system_prompt": "Be a guide.",
        "model": "fake-echo",
        "greeting": "Hello! How can I help?",
    }
    assert [m["role"] for m in record["messages"]] == ["user", "assistant", "user", "assistant"]
    first_reply = record["messages"][1]
    assert set(first_reply) == {
        "id", "role", "content", "created", "model", "status", "finish_reason",
        "prompt_tokens", "completion_tokens", "tokens_estimated", "error",
    }  # fmt: skip
    assert first_reply["created"] == "2025-03-01T09:31:45.123456Z"
    assert (first_reply["model"], first_reply["finish_reason"]) == ("gpt-4o-mini", "stop")
    assert (first_reply["prompt_tokens"], first_reply["completion_tokens"]) == (12, 34)
    assert first_reply["tokens_estimated"] is False
    last = record["messages"][-1]
    assert (last["status"], last["error"], last["prompt_tokens"]) == ("error", "The provider is unavailable.", None)


def test_json_export_keeps_the_shown_path_only_and_text_as_text(conversation):
    record = export.conversation_record(conversation, shown(conversation))
    contents = [m["content"] for m in record["messages"]]
    assert "An earlier answer." not in contents
    assert contents[1] == "See the *Alfama* and <script>alert(1)</script>."
    assert contents[2] == "And food?\nWith kids."


def test_conversation_without_persona_exports_a_null_persona(alice):
    conversation = make_conversation(alice, None)
    record = export.conversation_record(conversation, shown(conversation))
    assert record["persona"] is None


def test_json_document_is_written_one_conversation_at_a_time(conversation):
    records = (export.conversation_record(conversation, shown(conversation)) for _ in range(3))
    chunks = list(export.json_document_chunks(records, exported_at=EXPORTED_AT))
    assert len(chunks) == 5  # head, three records, tail
    assert len(json.loads(b"".join(chunks))["conversations"]) == 3
    empty = json.loads(b"".join(export.json_document_chunks([], exported_at=EXPORTED_AT)))
    assert empty["conversations"] == []


def test_estimated_token_counts_are_marked_in_the_json(conversation):
    reply = Message.objects.get(conversation=conversation, is_current=True, finish_reason="stop")
    Message.objects.filter(pk=reply.pk).update(prompt_tokens=40, completion_tokens=900, tokens_estimated=True)
    document = json.loads(export.conversation_json(conversation, shown(conversation), exported_at=EXPORTED_AT))
    messages = document["conversations"][0]["messages"]
    assert [m["tokens_estimated"] for m in messages] == [False, True, False, False]
    assert (messages[1]["prompt_tokens"], messages[1]["completion_tokens"]) == (40, 900)


TRICKY_TEXTS = [
    "",
    'plain ASCII with "quotes", a \\ backslash, a / slash',
    "".join(map(chr, range(0x80))),  # every control character, and DEL
    "caf\u00e9 \u65c5\u884c \U0001f9ed \u2028 \u2029 \u0085 \ufeff",
    "mixed\x7f",
    "line\r\nbreaks\tand\x00NUL\x1b[31m",
]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_record_json_is_what_json_dumps_writes(text):
    """The export's own JSON writer gives byte for byte what json.dumps(ensure_ascii=False) gives."""
    persona = SimpleNamespace(
        name=text, slug="s", avatar="\U0001f9ed", system_prompt=text, greeting="", model=SimpleNamespace(model_id=text)
    )
    conversation = SimpleNamespace(
        public_id=SHORT_ID_UUID,
        title=text,
        created_at=START,
        updated_at=START,
        archived=True,
        pinned_at=START,
        folder_id=1,
        folder=SimpleNamespace(name=text),
        temperature=0.7,
        persona=persona,
    )
    messages = [
        SimpleNamespace(
            public_id=uuid.uuid4(),
            role="assistant",
            content=text,
            created_at=START.replace(microsecond=microsecond),
            model_id=text,
            status="error",
            finish_reason=text[:32],
            prompt_tokens=tokens,
            completion_tokens=0 if tokens is None else tokens + 1,
            tokens_estimated=tokens is not None,
            error_text=text,
        )
        for microsecond, tokens in [(123456, None), (0, 7), (1, 2**31 - 1)]
    ]
    expected = json.dumps(export.conversation_record(conversation, messages), ensure_ascii=False)
    assert export.conversation_record_json(conversation, messages) == expected
    conversation.persona = None
    expected = json.dumps(export.conversation_record(conversation, []), ensure_ascii=False)
    assert export.conversation_record_json(conversation, []) == expected


@pytest.mark.parametrize(
    "moment, expected",
    [
        (None, None),
        (datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC), "2025-03-01T09:30:15.123456Z"),
        (datetime(2025, 3, 1, 9, 30, 15, tzinfo=UTC), "2025-03-01T09:30:15Z"),
        (datetime(2025, 3, 1, 17, 30, 15, 1, tzinfo=ZoneInfo("Asia/Shanghai")), "2025-03-01T09:30:15.000001Z"),
        (datetime(2025, 3, 1, 9, 30, 15, tzinfo=ZoneInfo("UTC")), "2025-03-01T09:30:15Z"),
        (datetime(2025, 3, 1, 4, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))), "2025-03-01T09:30:00Z"),
    ],
)
def test_times_are_written_in_utc_with_a_z(moment, expected):
    assert export.iso_utc(moment) == expected


# Markdown and text


def test_markdown_export_has_the_title_metadata_and_a_section_per_message(conversation):
    text = export.conversation_markdown(conversation, shown(conversation))
    assert text.startswith("# Trip to Lisbon\n\n- Persona: Travel guide (travel)\n- Model: fake-echo\n")
    assert "- Created: 2025-03-01T09:30:15.123456Z" in text
    assert f"- Conversation: {conversation.public_id}" in text
    sections = text.split("\n### ")[1:]
    assert [section.split("\n", 1)[0] for section in sections] == ["User", "Assistant", "User", "Assistant (error)"]
    assert "See the *Alfama* and <script>alert(1)</script>." in sections[1]
    assert "> Error: The provider is unavailable." in sections[3]
    assert "An earlier answer." not in text


def test_markdown_title_stays_on_one_line_and_untitled_gets_a_heading(alice):
    conversation = make_conversation(alice, title="Line one\n# injected")
    assert export.conversation_markdown(conversation, []).startswith("# Line one # injected\n")
    conversation.title = ""
    assert export.conversation_markdown(conversation, []).startswith("# Untitled conversation\n")


def test_text_export_has_the_title_metadata_and_the_messages(conversation):
    text = export.conversation_text(conversation, shown(conversation))
    lines = text.splitlines()
    assert lines[:2] == ["Trip to Lisbon", "=============="]
    assert "Persona: Travel guide (travel)" in lines and "Model: fake-echo" in lines
    assert "--- User ---\nWhat should I see in **Lisbon**?" in text
    assert "--- Assistant (error) ---\nTry pastéis de nata\n[Error: The provider is unavailable.]" in text


# File names


SHORT_ID_UUID = uuid.UUID("0123456789abcdef0123456789abcdef")


def named(title):
    return SimpleNamespace(title=title, created_at=START, public_id=SHORT_ID_UUID)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Trip to Lisbon", "Trip-to-Lisbon"),
        ("../../etc/passwd", "etc-passwd"),
        ("a\\b/c", "a-b-c"),
        ("Say \"hi\" and 'bye'", "Say-hi-and-bye"),
        ("tab\there\nnew\x00line\x1b[31m", "tab-here-new-line-[31m"),
        ("...hidden", "hidden"),
        ("   ", "conversation"),
        ("", "conversation"),
        ("///", "conversation"),
        ("x" * 500, "x" * 60),
        ("旅行计划 / 里斯本", "旅行计划-里斯本"),
        ("C:\\Windows|con<>?*", "C-Windows-con"),
        ("right\u202eto-left", "right-to-left"),
    ],
)
def test_titles_become_safe_file_names(title, expected):
    assert export.safe_filename_part(title) == expected


def test_conversation_file_name_has_date_title_and_short_id():
    assert export.conversation_filename(named("Trip / plan"), "md") == "2025-03-01-Trip-plan-01234567.md"
    assert export.conversation_filename(named(""), "json") == "2025-03-01-conversation-01234567.json"


def test_ascii_file_name_drops_what_ascii_cannot_hold():
    def ascii_name(title):
        return export.conversation_filename(named(title), "md", ascii_only=True)

    assert ascii_name("Café crème") == "2025-03-01-Cafe-creme-01234567.md"
    assert ascii_name("旅行计划") == "2025-03-01-conversation-01234567.md"


# The streamed ZIP


def test_zip_stream_makes_an_archive_zipfile_opens():
    entries = [
        export.ZipEntry("a.json", START, [b'{"a": ', b"1}"], large=True),
        export.ZipEntry("dir/b.md", START, ["héllo".encode()]),
    ]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(export.zip_stream(entries))))
    assert archive.testzip() is None
    assert archive.read("a.json") == b'{"a": 1}' and archive.read("dir/b.md").decode() == "héllo"
    assert archive.getinfo("dir/b.md").date_time == (2025, 3, 1, 9, 30, 14)  # ZIP times have 2-second steps


def _raw_entry_data(data: bytes, info: zipfile.ZipInfo) -> bytes:
    """The compressed bytes of an entry as the archive holds them, after its local header (APPNOTE 4.3.7)."""
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length
    return data[start : start + info.compress_size]


def test_zip_stream_deflates_every_entry_with_isa_l_at_the_export_level():
    """Each entry's deflate stream is what ISA-L writes from its pieces, which zlib's fastest level does not."""
    text = " ".join(random.Random(1).choice(["token", "stream", "reply", "旅行", "persona"]) for _ in range(40_000))
    pieces = [text[:90_000].encode(), text[90_000:].encode()]
    data = b"".join(export.zip_stream([export.ZipEntry("a.md", START, pieces), export.ZipEntry("b.md", START, [])]))
    archive = zipfile.ZipFile(io.BytesIO(data))

    isa_l = isal_zlib.compressobj(export.ZIP_COMPRESSLEVEL, isal_zlib.DEFLATED, -15)
    expected = b"".join(isa_l.compress(piece) for piece in pieces) + isa_l.flush()
    zlib_fastest = zlib.compressobj(1, zlib.DEFLATED, -15)
    assert expected != b"".join(zlib_fastest.compress(piece) for piece in pieces) + zlib_fastest.flush()
    assert _raw_entry_data(data, archive.getinfo("a.md")) == expected
    assert archive.read("a.md") == b"".join(pieces) and archive.read("b.md") == b""
    assert archive.getinfo("a.md").compress_type == zipfile.ZIP_DEFLATED and archive.testzip() is None


def test_zip_stream_sends_pieces_before_it_has_read_every_entry():
    pulled = []
    noise = random.Random(0).randbytes(100_000)  # does not compress

    def entries():
        for i in range(10):
            pulled.append(i)
            yield export.ZipEntry(f"{i}.bin", START, [noise])

    stream = export.zip_stream(entries(), chunk_bytes=16 * 1024)
    first = next(stream)
    assert first.startswith(b"PK\x03\x04") and pulled == [0]
    rest = list(stream)
    assert pulled == list(range(10)) and len(rest) > 5
    assert len(zipfile.ZipFile(io.BytesIO(first + b"".join(rest))).namelist()) == 10


def test_archive_holds_conversations_json_and_one_markdown_file_per_conversation(alice, persona):
    conversations = [make_conversation(alice, persona, title=title) for title in ["One", "Two / three", ""]]
    rows = Conversation.objects.select_related("persona__model").filter(owner=alice).order_by("id")
    pairs = [(c, shown(c)) for c in rows]
    data = b"".join(export.archive_chunks(json_pairs=iter(pairs), markdown_pairs=iter(pairs), exported_at=EXPORTED_AT))
    archive = zipfile.ZipFile(io.BytesIO(data))
    document = json.loads(archive.read("conversations.json"))
    assert [c["id"] for c in document["conversations"]] == [str(c.public_id) for c in conversations]
    names = sorted(name for name in archive.namelist() if name.endswith(".md"))
    assert names == sorted(
        f"conversations/2025-03-01-{part}-{c.public_id.hex[:8]}.md"
        for part, c in zip(["One", "Two-three", "conversation"], conversations, strict=True)
    )


# Reads for the export


def test_export_reads_every_conversation_of_the_user_with_its_shown_path(alice, bob, persona):
    mine = [make_conversation(alice, persona, title=f"Mine {i}", archived=i == 1) for i in range(5)]
    empty = Conversation.objects.create(owner=alice, persona=None, title="Empty")
    make_conversation(bob, persona, title="Bob's")
    pairs = list(
        selectors.message_iter_for_export(conversations=selectors.conversation_iter_for_export(user=alice), per_query=2)
    )
    assert [c.pk for c, _ in pairs] == [c.pk for c in mine] + [empty.pk]
    assert pairs[5][1] == []
    for conversation, messages in pairs[:5]:  # the shown path, oldest first
        assert [m.public_id for m in messages] == [m.public_id for m in shown(conversation)]
        assert all(m.conversation_id == conversation.pk for m in messages)


def test_a_users_export_holds_their_part_of_an_im_group_chat_and_nothing_other_members_wrote(
    alice, bob, persona, django_user_model
):
    group_chat = services.conversation_create(
        owner=django_user_model.objects.create_user("feishu-group-1"), persona=persona
    )
    for asker, text in ((bob, "bob speaks first"), (alice, "alice asks"), (bob, "bob again")):
        sent = services.message_send(conversation=group_chat, text=text, asked_by=asker)
        services.reply_finish(message=sent.assistant_message, content=f"answer to {text}", status="complete")
    group_chat.folder = Folder.objects.create(owner=group_chat.owner, name="the group account's")
    group_chat.save(update_fields=["folder"])
    own = make_conversation(alice, persona, title="Alice's own")

    pairs = list(selectors.message_iter_for_export(conversations=selectors.conversation_iter_for_export(user=alice)))
    records = [export.conversation_record(conversation, messages) for conversation, messages in pairs]

    assert [r["title"] for r in records] == ["", "Alice's own"]  # the group's title came from bob's words
    group, mine = records
    assert [m["content"] for m in group["messages"]] == ["alice asks", "answer to alice asks"]
    assert group["group_chat"] is True and "group_chat" not in mine
    assert group["folder"] is None  # the group account's folders are not the user's
    assert len(mine["messages"]) == len(shown(own))
    markdown = export.conversation_markdown(pairs[0][0], pairs[0][1])
    assert "Group chat: only your messages and the replies to them" in markdown and "bob" not in markdown


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plan")
def test_finding_the_group_chats_a_user_asked_in_reads_an_index_not_their_messages(alice, persona):
    """The conversations of others in which a user asked come from the (asker, conversation) index alone."""
    make_conversation(alice, persona, title="Mine")
    with CaptureQueriesContext(connection) as queries:
        list(selectors.conversation_iter_for_export(user=alice))
    [sql] = [query["sql"] for query in queries.captured_queries if 'FROM "conversations_conversation"' in query["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql)
        plan = [row[-1] for row in cursor.fetchall()]
    messages = [step for step in plan if step.startswith("SEARCH U0 ")]  # U0: the subquery's messages
    assert messages and all("COVERING INDEX message_asked_by_conversation (asked_by_id=?)" in m for m in messages), plan


def test_export_reads_take_one_query_per_batch_of_conversations(alice, persona, django_assert_num_queries):
    for i in range(5):
        make_conversation(alice, persona, title=f"C{i}")
    folder = organizing.folder_get_or_create(owner=alice, name="Trips")
    organizing.conversation_move(conversation=Conversation.objects.filter(owner=alice).order_by("pk")[0], folder=folder)
    conversations = selectors.conversation_iter_for_export(user=alice)
    # The personas and the folders once, the conversations, then messages for 2 + 2 + 1 of them.
    with django_assert_num_queries(3 + 3) as queries:
        pairs = list(selectors.message_iter_for_export(conversations=conversations, per_query=2))
        for conversation, _ in pairs:
            assert conversation.persona.model.model_id  # loaded before the conversations
        assert pairs[0][0].folder.name == "Trips"
    [sql] = [query["sql"] for query in queries.captured_queries if 'FROM "conversations_conversation"' in query["sql"]]
    assert "personas_persona" not in sql and "conversations_folder" not in sql  # not read again for each row


def test_export_reads_use_chunked_iterators(alice, persona, monkeypatch):
    from django.db.models.query import QuerySet

    make_conversation(alice, persona)
    calls = []
    original = QuerySet.iterator

    def iterator(self, chunk_size=None):
        calls.append((self.model.__name__, chunk_size))
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", iterator)
    list(selectors.message_iter_for_export(conversations=selectors.conversation_iter_for_export(user=alice)))
    assert calls == [
        ("Conversation", selectors.EXPORT_ROWS_PER_FETCH),
        ("Message", selectors.EXPORT_ROWS_PER_FETCH),
    ]


def test_export_reads_message_rows_of_the_columns_it_writes_only(alice, persona):
    """Rows of values, not models (building a model per message was most of the reading time); never the HTML."""
    make_conversation(alice, persona)
    for fields in [selectors.EXPORT_MESSAGE_FIELDS, export.MARKDOWN_MESSAGE_FIELDS]:
        conversations = selectors.conversation_iter_for_export(user=alice)
        with CaptureQueriesContext(connection) as queries:
            [(_, messages)] = selectors.message_iter_for_export(conversations=conversations, fields=fields)
        assert len(messages) == 4 and not isinstance(messages[0], Message)
        assert messages[0]._fields == ("conversation_id", *fields)
        message_sql = queries.captured_queries[-1]["sql"]
        assert "content_html" not in message_sql and ("public_id" in message_sql) == ("public_id" in fields)


def test_export_rows_give_the_same_json_and_markdown_as_messages(conversation):
    """The "export all" files read rows; the one-conversation downloads read Messages: the same files."""
    [(row_conversation, rows)] = selectors.message_iter_for_export(
        conversations=selectors.conversation_iter_for_export(user=conversation.owner)
    )
    [(_, markdown_rows)] = selectors.message_iter_for_export(
        conversations=selectors.conversation_iter_for_export(user=conversation.owner),
        fields=export.MARKDOWN_MESSAGE_FIELDS,
    )
    messages = shown(conversation)
    assert export.conversation_record(row_conversation, rows) == export.conversation_record(conversation, messages)
    assert export.conversation_json(row_conversation, rows, exported_at=EXPORTED_AT) == export.conversation_json(
        conversation, messages, exported_at=EXPORTED_AT
    )
    assert export.conversation_markdown(row_conversation, markdown_rows) == export.conversation_markdown(
        conversation, messages
    )
