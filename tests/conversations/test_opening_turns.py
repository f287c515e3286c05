"""Replies started together open their upstream streams in turn (generation._opening_turn).

`modelled` stands in for `llm.stream_chat` and does what the SDK does when it
opens a stream: it builds the request (no await), hands it over
(`on_sending`), and the HTTP transport writes it in a task of its own, as
aiohttp does on Python 3.11. A hop's replies start in one step of the event
loop, as the consumers start them.
"""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

import llm
from conversations import generation, services
from tests.sockets import replies_settled

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def log() -> list[str]:
    return []


@pytest.fixture
def modelled(monkeypatch, log):
    """Replace `llm.stream_chat`; return {question: an asyncio.Event the build waits for, or an LLMError it raises}."""
    before_build: dict[str, asyncio.Event | llm.LLMError] = {}

    async def written(question: str) -> None:
        log.append(f"write {question}")

    async def stream_chat(config, request, *, on_sending=None, pace_s=None):
        question = request.messages[-1]["content"]
        hold = before_build.get(question)
        if isinstance(hold, asyncio.Event):
            await hold.wait()
        log.append(f"build {question}")
        if isinstance(hold, llm.LLMError):
            raise hold
        on_sending()
        asyncio.get_running_loop().create_task(written(question))
        await asyncio.sleep(0)  # Waiting for the response's headers.
        yield llm.Delta("Hi")
        yield llm.Finish(finish_reason="stop", model=request.model, prompt_tokens=3, completion_tokens=1)

    monkeypatch.setattr(llm, "stream_chat", stream_chat)
    return before_build


async def start_together(persona, questions: list[str]) -> list[generation.ReplyGenerator]:
    """Ask each of `questions` in a new chat of a user of its own, in one batch, and start the replies in one step."""

    @sync_to_async
    def requested_together():
        users = [User.objects.create_user(f"student-{question}") for question in questions]
        chats = [services.conversation_create(owner=user, persona=persona) for user in users]
        return services.replies_request(
            [
                {"user": user, "public_id": chat.public_id, "action": "send", "text": question}
                for user, chat, question in zip(users, chats, questions, strict=True)
            ]
        )

    requested = await requested_together()
    return [generation.start_reply(outcome.job) for outcome in requested]


async def ended(generators: list[generation.ReplyGenerator]) -> None:
    await asyncio.wait_for(asyncio.gather(*(g.task for g in generators)), 5)
    await replies_settled()


async def test_each_request_is_written_before_the_next_one_is_built(persona, modelled, log):
    # Without turns all three are built first, and the three requests leave together after the last build.
    await ended(await start_together(persona, ["q0", "q1", "q2"]))
    assert log == ["build q0", "write q0", "build q1", "write q1", "build q2", "write q2"]


async def test_a_stream_that_fails_before_handing_over_passes_its_turn_at_once(persona, modelled, log, monkeypatch):
    monkeypatch.setattr(generation, "OPENING_TURN_WAIT_MAX_S", 30)  # Longer than `ended` waits.
    modelled["q0"] = llm.LLMError(llm.ErrorKind.AUTH, "Bad key")
    generators = await start_together(persona, ["q0", "q1"])
    await ended(generators)
    assert log == ["build q0", "build q1", "write q1"]


async def test_a_build_that_hangs_holds_the_next_one_only_up_to_the_bound(persona, modelled, log, monkeypatch):
    monkeypatch.setattr(generation, "OPENING_TURN_WAIT_MAX_S", 0.05)
    modelled["q0"] = hung = asyncio.Event()
    generators = await start_together(persona, ["q0", "q1"])
    await asyncio.wait_for(generators[1].task, 5)
    assert log == ["build q1", "write q1"]
    hung.set()
    await ended(generators)
    assert log[2:] == ["build q0", "write q0"]


async def test_a_reply_stopped_while_waiting_for_its_turn_passes_it_at_once(persona, modelled, log, monkeypatch):
    monkeypatch.setattr(generation, "OPENING_TURN_WAIT_MAX_S", 30)  # Longer than the test waits.
    modelled["q0"] = hung = asyncio.Event()
    generators = await start_together(persona, ["q0", "q1", "q2"])
    await asyncio.sleep(0.05)  # q1 waits for q0's turn, q2 for q1's.
    generators[1].stop()
    await asyncio.wait_for(generators[2].task, 5)
    assert log == ["build q2", "write q2"]
    hung.set()
    await ended(generators)
    assert log[2:] == ["build q0", "write q0"]
