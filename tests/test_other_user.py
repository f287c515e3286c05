"""Another user can do nothing with alice's data, through any URL of the site.

The URL configuration is walked, so a new URL cannot be missed: every
pattern must have a case below (`test_every_url_pattern_has_a_case` fails
otherwise). Patterns with ids of alice's rows are requested as bob, with
each of her ids in each id parameter, GET and POST, plain and htmx: 404, or
405 for a method the view does not take. A share link's token is the
capability to read it: a token bob was not given answers 404. Patterns without ids must not
show bob anything of hers, while the same request as alice does. After
every case, alice's rows are exactly as before.

The admin (staff only), allauth's pages and the JavaScript catalog (no user data) are left out.
"""

import io
import re
import uuid
import zipfile
from itertools import product

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, include, path

from api import services as api_services
from api.models import ApiKey
from attachments import services as attachments_services
from attachments.models import Attachment
from conversations import organizing, services
from conversations.models import Conversation, Folder, Message
from personas.models import Persona
from sharing.models import SharedConversation
from sharing.services import conversation_share
from tests.conftest import streamed_requests
from tests.conversations.history import make_conversation
from transfer import jobs as import_jobs
from transfer.models import ImportJob

SKIPPED_PREFIXES = ("admin/", "accounts/")
ALICE_TITLE = "Quokka expedition planning"
ALICE_ARCHIVED_TITLE = "Archived wombat notes"
ALICE_MODEL = "quokka-model-x"  # the model of alice's recent reply, on her usage page
ALICE_WORDS = [
    "Quokka",
    "wombat",
    "Alfama",
    "Lisbon",
    "alices-history.json",
    "alices-notes.txt",
    "Numbat persona",
    "alices-laptop-key",
    "Alice's folder",
    ALICE_MODEL,
]
SEARCHED = "Alfama"
HTMX = {"HX-Request": "true"}

# Patterns whose parameters name alice's rows: bob gets 404 (405 for a wrong method).
ID_PATTERNS = {
    "conversations:conversation-detail",
    "conversations:message-show",
    "conversations:message-page",
    "conversations:conversation-rename",
    "conversations:conversation-persona",
    "conversations:conversation-delete",
    "conversations:conversation-archive",
    "conversations:conversation-unarchive",
    "transfer:conversation-export",
    "transfer:import-detail",
    # A bot channel's callback: no id of alice's names a channel.
    "bots:feishu-callback",
    "bots:wechat-callback",
    "conversations:conversation-model",
    "conversations:persona-edit",
    "conversations:persona-delete",
    "attachments:attachment-file",
    "attachments:attachment-remove",
    "api:key-revoke",
    "conversations:conversation-pin",
    "conversations:conversation-folder",
    "conversations:folder-delete",
    "conversations:folder-detail",
    "conversations:folder-rename",
    "sharing:share-manage",
}
# Patterns whose parameter is a share link's token (its capability): one bob was not given answers 404.
TOKEN_PATTERNS = {"sharing:shared-detail", "sharing:shared-continue"}
# Patterns without ids: bob's own pages, which must hold nothing of alice's.
OWN_DATA_PATTERNS = {
    "conversations:conversation-new",
    "conversations:conversation-create",
    "conversations:conversation-list",
    "conversations:conversation-archived-list",
    "conversations:pinned-list",
    "conversations:search",
    "transfer:export-all",
    "transfer:data",
    "transfer:import-create",
    "account",
    "bots:account-links",
    "custom-instructions",
    "conversations:persona-list",
    "conversations:persona-create",
    "attachments:attachment-upload",
    "api:page",
    "api:keys",
    "api:console-key",
    # Cookies never authenticate /v1: bob's session gets a 401 there, as alice's would.
    "v1:models",
    "v1:chat-completions",
    "v1:conversation-list",
    "v1-not-found",
    "usage:usage",
    "usage:usage-site",
}
# /v1 patterns with ids of hers: cookies never authenticate /v1, so bob's session gets a 401 (as alice's would).
KEY_ONLY_ID_PATTERNS = {"v1:conversation-detail", "v1:conversation-export"}
# Patterns that show no user's data at all (the same answer for everyone): bob must see nothing of hers.
NO_USER_DATA_PATTERNS = {"javascript-catalog", "language-set", "theme-set"}
# Values of parameters that are not ids.
OTHER_PARAMETERS = {"fmt": ["json", "md", "txt"]}
POST_DATA = {
    "title": "Renamed by bob",
    "name": "Renamed by bob",
    "place": "sidebar",
    "next": "/",
    "persona": "p-1",
    "message": "hi",
}


def url_patterns(patterns=None, prefix: str = "", namespace: str = "") -> list[tuple[str, str, list[str]]]:
    """Return (name, route, parameter names) of every URL pattern outside SKIPPED_PREFIXES."""
    found = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if route.startswith(SKIPPED_PREFIXES):
            continue
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found += url_patterns(pattern.url_patterns, route, inner)
        elif isinstance(pattern, URLPattern):
            parameters = list(pattern.pattern.regex.groupindex)
            found.append((f"{namespace}{pattern.name}", route, parameters))
    return found


def fill(route: str, values: dict[str, str]) -> str:
    """Return the path of `route` ("c/<uuid:public_id>/") with `values` in its parameters."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match.group(1)], route)


@pytest.fixture
def alice_data(alice, bob, persona, settings, tmp_path):
    """Alice's conversations (one archived), messages and import job; bob's own conversation."""
    settings.MEDIA_ROOT = tmp_path
    persona.slug = "p-1"
    persona.save()
    conversation = make_conversation(alice, persona, title=ALICE_TITLE)
    archived = services.conversation_create(owner=alice, persona=persona)
    Conversation.objects.filter(pk=archived.pk).update(title=ALICE_ARCHIVED_TITLE, archived=True)
    ImportJob.objects.create(owner=alice, source="imports/x.json", filename="alices-history.json", total=4)
    services.conversation_create(owner=bob, persona=persona)
    upload = SimpleUploadedFile("alices-notes.txt", b"Quokka notes from Lisbon")
    attachments_services.attachment_upload(owner=alice, upload=upload)
    Persona.objects.create(name="Numbat persona", slug="alices-own", model=persona.model, owner=alice)
    api_services.api_key_create(user=alice, name="alices-laptop-key")
    organizing.conversation_move(
        conversation=conversation, folder=organizing.folder_get_or_create(owner=alice, name="Alice's folder")
    )
    organizing.conversation_set_pinned(conversation=archived, pinned=True)
    recent = services.message_send(conversation=archived, text="A recent question")
    services.reply_finish(message=recent.assistant_message, content="ok", status="complete", model_id=ALICE_MODEL)
    conversation_share(conversation=conversation, show_owner=True)
    return conversation


def alice_ids(alice) -> list[str]:
    conversations = [str(c) for c in Conversation.objects.filter(owner=alice).values_list("public_id", flat=True)]
    messages = [str(m) for m in Message.objects.filter(conversation__owner=alice).values_list("public_id", flat=True)]
    jobs = [str(j) for j in ImportJob.objects.filter(owner=alice).values_list("public_id", flat=True)]
    files = [str(a) for a in Attachment.objects.filter(owner=alice).values_list("public_id", flat=True)]
    personas = list(Persona.objects.filter(owner=alice).values_list("slug", flat=True))
    keys = [str(k) for k in ApiKey.objects.filter(user=alice).values_list("pk", flat=True)]
    folders = [str(f) for f in Folder.objects.filter(owner=alice).values_list("public_id", flat=True)]
    tokens = list(SharedConversation.objects.filter(conversation__owner=alice).values_list("token", flat=True))
    return conversations + messages + jobs + files + personas + keys + folders + tokens


def snapshot(alice) -> dict[str, list[dict]]:
    """Every row of alice's, every field."""
    return {
        "conversations": list(Conversation.objects.filter(owner=alice).order_by("pk").values()),
        "messages": list(Message.objects.filter(conversation__owner=alice).order_by("pk").values()),
        "import_jobs": list(ImportJob.objects.filter(owner=alice).order_by("pk").values()),
        "attachments": list(Attachment.objects.filter(owner=alice).order_by("pk").values()),
        "personas": list(Persona.objects.filter(owner=alice).order_by("pk").values()),
        "api_keys": list(ApiKey.objects.filter(user=alice).order_by("pk").values()),
        "folders": list(Folder.objects.filter(owner=alice).order_by("pk").values()),
        "shares": list(SharedConversation.objects.filter(conversation__owner=alice).order_by("pk").values()),
    }


def body(response) -> str:
    if isinstance(response, StreamingHttpResponse):
        content = b"".join(response.streaming_content)
        if response["Content-Type"] == "application/zip":
            archive = zipfile.ZipFile(io.BytesIO(content))
            return "\n".join(archive.read(name).decode() for name in archive.namelist())
        return content.decode()
    return response.content.decode()


def leaked(response, markers: list[str]) -> list[str]:
    """Return the `markers` found in the response's body (a ZIP's files read) or its redirect."""
    text = body(response) + response.get("Location", "")
    return [marker for marker in markers if marker in text]


def requests_as(client: Client, url: str, *, query: dict | None = None) -> list:
    """GET and POST `url`, plain and htmx."""
    return [
        client.get(url, query),
        client.get(url, query, headers=HTMX),
        client.post(url, POST_DATA),
        client.post(url, POST_DATA, headers=HTMX),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "route", "parameters"), url_patterns(), ids=[p[0] for p in url_patterns()])
def test_bob_can_do_nothing_with_alices_data(client, alice, bob, alice_data, monkeypatch, name, route, parameters):
    monkeypatch.setattr(import_jobs, "start_import_thread", lambda job_id: None)  # Bob's imports do not run.
    before = snapshot(alice)
    ids = alice_ids(alice)
    markers = ALICE_WORDS + [i for i in ids if not i.isdigit()]  # A key's pk ("1") is in any page.
    client.force_login(bob)

    if name in TOKEN_PATTERNS:
        url = fill(route, {"token": "B" * 43})
        for response in requests_as(client, url):
            assert response.status_code in (404, 405), (url, response.status_code)
            assert leaked(response, markers) == [], url
    elif name in KEY_ONLY_ID_PATTERNS:
        for values in product(ids, repeat=len(parameters)):
            url = fill(route, dict(zip(parameters, values, strict=True)))
            for response in requests_as(client, url):
                assert response.status_code in (401, 405), (url, response.status_code)
                assert leaked(response, markers) == [], url
    elif name in ID_PATTERNS:
        # Every id of hers in every id parameter: a view that looked up the wrong kind of row would show.
        choices = [OTHER_PARAMETERS.get(p, ids) for p in parameters]
        assert any(p not in OTHER_PARAMETERS for p in parameters), f"{name} has no id parameter"
        for values in product(*choices):
            url = fill(route, dict(zip(parameters, values, strict=True)))
            for response in requests_as(client, url):
                assert response.status_code in (404, 405), (url, response.status_code)
                assert leaked(response, markers) == [], url
    elif name in NO_USER_DATA_PATTERNS:
        for response in requests_as(client, fill(route, {})):
            assert response.status_code < 500
            assert leaked(response, markers) == [], route
    else:
        assert name in OWN_DATA_PATTERNS, f"{name} needs a case in tests/test_other_user.py"
        assert not parameters
        url = fill(route, {})
        # A search for a word of hers; the search page echoes the query itself.
        query = {"q": SEARCHED}
        for response in requests_as(client, url, query=query):
            assert response.status_code < 500
            assert leaked(response, [m for m in markers if m != SEARCHED]) == [], url
        # The same page as alice shows her data: it would leak if it were not scoped to the user.
        as_alice = Client()
        as_alice.force_login(alice)
        response = as_alice.get(url, query)
        if response.status_code == 200 and name in OWN_DATA_PATTERNS:
            assert leaked(response, [ALICE_TITLE, ALICE_ARCHIVED_TITLE, "alices-history.json", ALICE_MODEL]), url

    assert snapshot(alice) == before


def test_every_url_pattern_has_a_case():
    names = [name for name, _, _ in url_patterns()]

    assert len(names) == len(set(names)), "every URL pattern needs a name"
    assert set(names) == ID_PATTERNS | KEY_ONLY_ID_PATTERNS | OWN_DATA_PATTERNS | NO_USER_DATA_PATTERNS | TOKEN_PATTERNS


def test_the_walk_finds_patterns_in_nested_includes():
    extra = [path("extra/", include(([path("<uuid:public_id>/thing/", lambda r: None, name="thing")], "extra")))]

    assert ("extra:thing", "extra/<uuid:public_id>/thing/", ["public_id"]) in url_patterns(extra)


# The websocket: bob's socket to alice's conversation is closed, and what he sends after does nothing.


@pytest.mark.django_db(transaction=True)
async def test_bob_cannot_send_to_or_stop_alices_conversation(alice, bob, make_persona, upstream, open_socket):
    persona = await sync_to_async(make_persona)("long:40+delay:20")
    conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
    alices_socket = await open_socket(alice, conversation.public_id)
    await alices_socket.send("Tell me something long")
    await alices_socket.receive_until("w0")  # Alice's reply is streaming.

    bobs_socket = await open_socket(bob, conversation.public_id)
    closed = await bobs_socket.communicator.receive_output(2)
    assert closed["type"] == "websocket.close" and closed["code"] == 4403
    frames = [
        {"action": "stop"},
        {"action": "send", "message": "bob was here", "idempotency_key": str(uuid.uuid4())},
        {"action": "regenerate"},
        {"action": "sync", "full": True},
    ]
    for frame in frames:
        await bobs_socket.communicator.send_json_to(frame)

    await alices_socket.receive_final("complete")  # Bob's stop did not stop it.
    assert await bobs_socket.communicator.receive_nothing(0.2)
    assert not await Message.objects.filter(content__contains="bob was here").aexists()
    assert len(streamed_requests(upstream)) == 1
