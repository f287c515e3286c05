"""Every malformed frame is refused with 4400 and a reason, before any database round trip."""

import json

import pytest

from conversations import consumers
from conversations.consumers import frame_problem
from conversations.models import Message
from tests.sockets import start_chat

pytestmark = pytest.mark.django_db(transaction=True)

JSON_VALUES = [None, True, 0, 1.5, "text", [], ["a"], {}, {"a": 1}]


def malformed_frames() -> list[tuple[str, str]]:
    """Return (id, frame text) for every JSON type in every field, and the structural cases."""
    frames = [
        ("deep-array", "[" * 100_000 + "]" * 100_000),
        ("deep-object", '{"a":' * 100_000 + "1" + "}" * 100_000),
        ("lone-surrogate-message", '{"action": "send", "message": "hi \\ud800 there"}'),
        ("lone-surrogate-key", '{"action": "send", "message": "hi", "idempotency_key": "\\udfff"}'),
        ("lone-surrogate-streaming", '{"action": "sync", "streaming": ["\\ud83d"], "full": false}'),
        ("long-idempotency-key", json.dumps({"action": "send", "message": "hi", "idempotency_key": "k" * 65})),
        ("top-level-array", '[{"action": "send"}]'),
        ("top-level-string", '"send"'),
    ]
    for value in JSON_VALUES:
        if not isinstance(value, str):
            frames.append((f"action-{json.dumps(value)}", json.dumps({"action": value})))
    fields = {
        "send": {"message": str, "idempotency_key": str},
        "edit": {"message": str, "idempotency_key": str},
        "continue": {"idempotency_key": str},
        "sync": {"full": bool},
    }
    for action, types in fields.items():
        for field, kind in types.items():
            for value in JSON_VALUES:
                if not isinstance(value, kind) or (kind is bool and not isinstance(value, bool)):
                    frame = json.dumps({"action": action, field: value})
                    frames.append((f"{action}-{field}-{json.dumps(value)}", frame))
    for value in [None, True, 0, "x", {}, [1], [None], [["a"]]]:
        frames.append((f"sync-streaming-{json.dumps(value)}", json.dumps({"action": "sync", "streaming": value})))
    return frames


FRAMES = malformed_frames()


@pytest.mark.parametrize("frame", [f for _, f in FRAMES], ids=[i for i, _ in FRAMES])
async def test_a_malformed_frame_is_refused_with_a_reason(alice, make_persona, open_socket, frame, caplog):
    conversation = await start_chat(alice, make_persona)
    socket = await open_socket(alice, conversation.public_id)
    await socket.communicator.send_to(text_data=frame)
    alert = await socket.receive()
    assert 'id="composer-alert"' in alert and "The frame" in alert
    closed = await socket.communicator.receive_output(5)
    assert closed["type"] == "websocket.close" and closed["code"] == 4400
    assert closed.get("reason", "").startswith("The frame")
    assert not await Message.objects.filter(role="user").aexists()
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    "content",
    [
        {"action": "send", "message": "hi", "idempotency_key": "k" * 64, "HEADERS": {"HX-Request": "true"}},
        {"action": "edit", "message": "better"},
        {"action": "edit", "message": "better", "idempotency_key": "k-1"},
        {"action": "continue"},
        {"action": "continue", "idempotency_key": "k-2"},
        {"action": "regenerate", "message": 42},  # regenerate takes no text: fields of other actions are ignored
        {"action": "stop"},
        {"action": "sync", "streaming": [], "full": True},
        {"action": "send"},  # no text: the service answers "Type a message", the socket stays open
    ],
)
def test_well_formed_frames_pass(content):
    assert frame_problem(content) is None


async def test_a_refused_frame_costs_no_database_round_trip(alice, make_persona, open_socket, monkeypatch):
    conversation = await start_chat(alice, make_persona)
    socket = await open_socket(alice, conversation.public_id)
    checks = []
    signed_in = consumers._still_signed_in

    async def counted(scope):
        checks.append(scope)
        return await signed_in(scope)

    monkeypatch.setattr(consumers, "_still_signed_in", counted)
    await socket.communicator.send_to(text_data=json.dumps({"action": ["send"]}))
    await socket.receive()
    assert (await socket.communicator.receive_output(5))["code"] == 4400
    assert checks == []  # the sign-in check (two queries) never ran for the refused frame
