"""gRPC (api/rpc): `manage.py grpcserve` in a subprocess, called through the generated Python client."""

import os
import subprocess
import sys
import tempfile

import grpc
import pytest
from django.conf import settings
from grpc_tools import protoc

from accounts.selectors import site_settings
from api import services as api_services
from api.errors import ApiErrorKind
from api.rpc import chat_pb2, chat_pb2_grpc
from api.rpc.server import STATUS_CODES, _language
from conversations.models import Conversation, Message
from tests.servers import BASE_DIR, database_url
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RPC_DIR = BASE_DIR / "api" / "rpc"
GENERATED = ("chat_pb2.py", "chat_pb2.pyi", "chat_pb2_grpc.py")
TIMEOUT_S = 30


@pytest.fixture(scope="module")
def grpc_server(django_db_setup, fake_upstream):
    """`manage.py grpcserve --port 0` on the test database; yields its address, stops it after the module."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    env.update(
        DATABASE_URL=database_url(),
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        DJANGO_DEBUG="0",
        CHAT_UPSTREAM_RETRIES="0",
        PYTHONUNBUFFERED="1",
    )
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "grpcserve", "--port", "0"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            line = process.stdout.readline()  # The server says where it listens once it does.
            if "listening on" not in line:
                process.kill()
                log.seek(0)
                raise RuntimeError(f"grpcserve did not start: {line}{log.read()[-4000:]}")
            yield line.rsplit(" ", 1)[-1].strip()
        finally:
            process.terminate()
            process.wait(timeout=15)


@pytest.fixture
def stub(grpc_server, transactional_db):
    with grpc.insecure_channel(grpc_server) as channel:
        yield chat_pb2_grpc.ChatStub(channel)


@pytest.fixture
def key(alice):
    return api_services.api_key_create(user=alice, name="service")[1]


def bearer(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def ask(text: str, persona: str, **fields) -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(persona=persona, messages=[chat_pb2.ChatMessage(role="user", content=text)], **fields)


def test_list_personas_holds_the_active_personas(stub, key, make_persona):
    helper = make_persona(slug="helper", name="Helper", description="Helps")
    make_persona(slug="retired", is_active=False)
    response = stub.ListPersonas(chat_pb2.ListPersonasRequest(), metadata=bearer(key), timeout=TIMEOUT_S)
    assert [(p.id, p.name, p.description) for p in response.personas] == [(helper.slug, "Helper", "Helps")]


def test_chat_streams_the_conversation_id_the_deltas_then_the_finish(stub, key, alice, persona):
    events = list(stub.Chat(ask("你好，gRPC", persona.slug), metadata=bearer(key), timeout=TIMEOUT_S))
    first, *deltas, last = events
    assert first.WhichOneof("event") == "conversation_id"
    conversation = Conversation.objects.get(public_id=first.conversation_id, owner=alice)
    assert len(deltas) > 1
    assert all(event.WhichOneof("event") == "delta" for event in deltas)
    reply = Message.objects.get(conversation=conversation, role="assistant", parent__role="user")
    assert "".join(event.delta for event in deltas) == reply.content
    assert reply.content.startswith("You said: **你好，gRPC**")
    assert last.finish.finish_reason == "stop"
    assert last.finish.usage.completion_tokens == reply.completion_tokens > 0
    assert last.finish.usage.total_tokens == last.finish.usage.prompt_tokens + last.finish.usage.completion_tokens

    # Sending the id back continues the conversation.
    again = list(stub.Chat(ask("and again", persona.slug, conversation_id=first.conversation_id), metadata=bearer(key)))
    assert again[0].conversation_id == first.conversation_id
    assert conversation.messages.filter(role="user").count() == 2


def test_store_false_saves_nothing(stub, key, persona):
    events = list(stub.Chat(ask("secret", persona.slug, store=False), metadata=bearer(key), timeout=TIMEOUT_S))
    assert events[0].conversation_id == ""
    assert events[-1].finish.finish_reason == "stop"
    assert not Conversation.objects.exists()


def test_the_api_switched_off_for_the_site_is_permission_denied(stub, key, persona):
    row = site_settings()
    row.api_enabled = False
    row.save()
    for call in (
        lambda: stub.ListPersonas(chat_pb2.ListPersonasRequest(), metadata=bearer(key), timeout=TIMEOUT_S),
        lambda: list(stub.Chat(ask("hello", persona.slug), metadata=bearer(key), timeout=TIMEOUT_S)),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "switched off for this site" in raised.value.details()
        assert dict(raised.value.trailing_metadata())["error-code"] == "api_disabled_for_site"
    assert not Conversation.objects.exists()


def test_an_unknown_persona_is_not_found(stub, key, persona):
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Chat(ask("hello", "no-such-persona"), metadata=bearer(key), timeout=TIMEOUT_S))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-persona" in raised.value.details()
    trailing = dict(raised.value.trailing_metadata())
    assert trailing["error-code"] == "model_not_found"
    assert trailing["error-param"] == "model"


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer chat-not-a-key"),), (("authorization", "Basic abc"),)],
    ids=["no key", "unknown key", "not bearer"],
)
def test_a_bad_key_is_unauthenticated(stub, persona, metadata):
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Chat(ask("hello", persona.slug), metadata=metadata, timeout=TIMEOUT_S))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as listed:
        stub.ListPersonas(chat_pb2.ListPersonasRequest(), metadata=metadata, timeout=TIMEOUT_S)
    assert listed.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not Conversation.objects.exists()


def test_a_revoked_key_is_permission_denied(stub, alice, persona):
    row, key = api_services.api_key_create(user=alice, name="old")
    api_services.api_key_revoke(key=row)
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListPersonas(chat_pb2.ListPersonasRequest(), metadata=bearer(key), timeout=TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_another_users_conversation_is_not_found(stub, key, bob, persona):
    bobs = Conversation.objects.create(owner=bob, persona=persona)
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Chat(ask("hi", persona.slug, conversation_id=str(bobs.public_id)), metadata=bearer(key)))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert not bobs.messages.exists()


def test_no_message_is_an_invalid_argument_naming_the_field(stub, key, persona):
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Chat(chat_pb2.ChatRequest(persona=persona.slug), metadata=bearer(key), timeout=TIMEOUT_S))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(raised.value.trailing_metadata())["error-param"] == "messages"


def test_more_messages_than_the_apis_limit_are_refused_and_nothing_saved(stub, key, persona, settings):
    too_many = [chat_pb2.ChatMessage(role="user", content=f"m{i}") for i in range(settings.CHAT_API_MAX_MESSAGES + 1)]
    request = chat_pb2.ChatRequest(persona=persona.slug, messages=too_many)
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Chat(request, metadata=bearer(key), timeout=TIMEOUT_S))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(raised.value.trailing_metadata())["error-param"] == "messages"
    assert not Message.objects.exists()


def test_an_upstream_failure_is_unavailable_with_the_pages_message(stub, key, make_persona):
    failing = make_persona("status:503", slug="failing")
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Chat(ask("hello", failing.slug), metadata=bearer(key), timeout=TIMEOUT_S))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    reply = Message.objects.get(role="assistant", parent__role="user")
    assert reply.status == "error"
    assert raised.value.details() == reply.error_text


def test_cancelling_the_call_stops_the_reply_and_keeps_the_partial_text(stub, key, make_persona, upstream):
    stalled = make_persona("long:20+stall:60", slug="stalled")
    call = stub.Chat(ask("start", stalled.slug), metadata=bearer(key), timeout=TIMEOUT_S)
    assert next(call).WhichOneof("event") == "conversation_id"
    assert next(call).delta == "w0 "
    call.cancel()
    reply = wait_until(lambda: Message.objects.filter(role="assistant", status="stopped").first(), timeout_s=TIMEOUT_S)
    assert reply.content == "w0 "
    # The upstream request was cut off in its stall, after its first delta.
    [hangup] = wait_until(
        lambda: [h for h in upstream.hangups if h.model == stalled.model.model_id], timeout_s=TIMEOUT_S
    )
    assert (hangup.sent, hangup.deltas) == (1, 20)


def test_every_error_kind_has_a_status_code():
    assert set(STATUS_CODES) == set(ApiErrorKind)


def test_the_committed_generated_code_is_current(tmp_path):
    """`make grpc` regenerates api/rpc/chat_pb2*.py; this fails until the committed files match chat.proto."""
    (tmp_path / "api" / "rpc").mkdir(parents=True)
    (tmp_path / "api" / "rpc" / "chat.proto").write_bytes((RPC_DIR / "chat.proto").read_bytes())
    out = str(tmp_path)
    status = protoc.main(
        [
            "protoc",
            f"-I{out}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            "api/rpc/chat.proto",
        ]
    )
    assert status == 0
    for name in GENERATED:
        fresh = (tmp_path / "api" / "rpc" / name).read_text()
        assert (RPC_DIR / name).read_text() == fresh, f"api/rpc/{name} is stale: run `make grpc`"


class _Context:
    def __init__(self, metadata):
        self.metadata = metadata

    def invocation_metadata(self):
        return self.metadata


@pytest.mark.parametrize(
    ("metadata", "language"),
    [((("accept-language", "zh-CN,zh;q=0.9"),), "zh-hans"), ((), settings.LANGUAGE_CODE)],
)
def test_the_call_is_answered_in_the_language_its_metadata_asks_for(metadata, language):
    assert _language(_Context(metadata)) == language
