"""What a reply sees: the message limit, the token budget, oldest dropped first, too-large messages refused."""

import pytest

from llm import tokens
from llm.context import ContextTooLarge, reply_reserve, select_context

MODEL = "gpt-4o"  # exact counts, so budgets below can be computed to the token


def cost(role: str, content: str) -> int:
    return tokens.count_message_tokens({"role": role, "content": content}, model_id=MODEL)


def conversation(n: int) -> list[tuple[str, str]]:
    """Return n alternating user/assistant messages, the last one a user's."""
    return [("user" if (n - 1 - i) % 2 == 0 else "assistant", f"message number {i}") for i in range(n)]


def select(**overrides):
    arguments = {
        "system_prompt": "Be brief.",
        "greeting": "Hello! How can I help?",
        "history": conversation(5),
        "history_limit": 10,
        "context_window": None,
        "max_tokens": None,
        "model_id": MODEL,
    }
    return select_context(**{**arguments, **overrides})


def contents(context) -> list[str]:
    return [m["content"] for m in context.messages]


def test_sends_system_prompt_greeting_history_and_new_message_in_order():
    history = [("user", "first"), ("assistant", "second"), ("user", "new question")]

    context = select(history=history)

    assert context.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "second"},
        {"role": "user", "content": "new question"},
    ]
    assert (context.kept_count, context.total_count) == (3, 3)


def test_a_blank_system_prompt_and_no_greeting_are_left_out():
    context = select(system_prompt="  \n", greeting=None, history=[("user", "hi")])

    assert context.messages == [{"role": "user", "content": "hi"}]


def test_the_message_limit_keeps_the_latest_messages_new_one_included():
    history = conversation(9)

    context = select(history=history, history_limit=4)

    assert contents(context)[2:] == [content for _, content in history[-4:]]
    assert (context.kept_count, context.total_count) == (4, 9)


@pytest.mark.parametrize("history_limit", [0, 1])
def test_a_limit_below_two_sends_only_the_new_message(history_limit):
    context = select(history=conversation(5), history_limit=history_limit)

    assert contents(context) == ["Be brief.", "Hello! How can I help?", "message number 4"]
    assert context.kept_count == 1


def test_the_token_budget_drops_the_oldest_messages_first():
    history = [
        ("user", "old " * 40),
        ("assistant", "older " * 40),
        ("user", "recent"),
        ("assistant", "reply"),
        ("user", "new"),
    ]
    fits = 3 + cost("system", "Be brief.") + cost("assistant", "Hello! How can I help?")
    fits += cost("user", "recent") + cost("assistant", "reply") + cost("user", "new")

    context = select(history=history, context_window=fits + 500, max_tokens=500)

    assert contents(context)[2:] == ["recent", "reply", "new"]
    assert context.tokens == fits == context.budget
    assert (context.kept_count, context.total_count) == (3, 5)


def test_a_large_middle_message_ends_the_history_rather_than_being_skipped():
    history = [("user", "tiny"), ("assistant", "huge " * 500), ("user", "recent"), ("user", "new")]
    without_huge = 3 + cost("system", "Be brief.") + cost("assistant", "Hello! How can I help?")
    without_huge += cost("user", "tiny") + cost("user", "recent") + cost("user", "new")

    context = select(history=history, context_window=without_huge + 100, max_tokens=100)

    assert contents(context)[2:] == ["recent", "new"]  # "tiny" would fit, but only past the huge one


def test_tokens_are_the_counted_prompt_of_what_is_sent():
    context = select(history=conversation(7), context_window=128_000, max_tokens=4_096)

    assert context.tokens == tokens.count_chat_tokens(context.messages, model_id=MODEL)
    assert context.budget == 128_000 - 4_096
    assert context.exact is True


def test_the_greeting_is_kept_even_when_it_crowds_out_history():
    greeting = "Welcome! " * 200
    history = [("user", "earlier"), ("user", "new")]
    just_enough = 3 + cost("system", "Be brief.") + cost("assistant", greeting) + cost("user", "new")

    context = select(greeting=greeting, history=history, context_window=just_enough + 10, max_tokens=10)

    assert contents(context) == ["Be brief.", greeting, "new"]


def test_a_new_message_too_large_for_the_window_is_refused_with_its_size():
    big = "word " * 5_000
    head = 3 + cost("system", "Be brief.") + cost("assistant", "Hello! How can I help?")

    with pytest.raises(ContextTooLarge) as caught:
        select(history=[("user", "earlier"), ("user", big)], context_window=4_096, max_tokens=1_000)

    assert caught.value.tokens == cost("user", big)
    assert caught.value.budget == 4_096 - 1_000 - head
    assert str(caught.value) == (
        f"Your message is about {caught.value.tokens:,} tokens; this model's context window leaves room for "
        f"{caught.value.budget:,}. Shorten it or start a new chat."
    )


def test_a_persona_that_fills_the_window_asks_for_an_admin():
    with pytest.raises(ContextTooLarge, match="Ask an admin") as caught:
        select(system_prompt="rules " * 3_000, history=[("user", "hi")], context_window=2_048, max_tokens=512)

    assert caught.value.budget == 0


def test_an_unknown_context_window_applies_only_the_message_limit():
    history = [("user", "long " * 20_000)] * 6 + [("user", "new")]

    context = select(history=history, history_limit=5, context_window=None)

    assert context.kept_count == 5
    assert context.budget is None
    assert context.tokens == tokens.count_chat_tokens(context.messages, model_id=MODEL)


@pytest.mark.parametrize(
    ("context_window", "max_tokens", "expected"),
    [(8_192, None, 1_024), (2_048, None, 512), (8_192, 300, 300), (8_192, 0, 0)],
)
def test_reply_reserve_defaults_to_1024_or_a_quarter_of_the_window(context_window, max_tokens, expected):
    assert reply_reserve(context_window=context_window, max_tokens=max_tokens) == expected


def test_without_max_tokens_the_default_reserve_comes_off_the_budget():
    context = select(context_window=2_048, max_tokens=None)

    assert context.budget == 2_048 - 512


def test_other_models_are_counted_about_and_say_so():
    context = select(history=conversation(3), model_id="llama3.1:8b")

    assert context.exact is False
    assert context.tokens == tokens.count_chat_tokens(context.messages, model_id="llama3.1:8b")
    assert context.tokens > tokens.count_chat_tokens(context.messages, model_id="gpt-4")


def test_an_empty_history_is_a_programming_error():
    with pytest.raises(ValueError):
        select(history=[])


def test_known_content_counts_are_used_instead_of_counting_again():
    history = conversation(5)
    plain = select(history=history, context_window=10_000)
    # An earlier message whose stored count is huge no longer fits: the stored count was used.
    known = [None, None, 9_000, None, None]
    trimmed = select(history=history, context_window=10_000, content_tokens=known)
    assert plain.kept_count == 5 and trimmed.kept_count == 2
    assert trimmed.tokens == plain.tokens - sum(cost(*m) for m in history[:3])


def test_known_counts_spare_the_tokenizer(monkeypatch):
    history = [("user" if i % 2 == 0 else "assistant", f"message number {i}") for i in range(41)]
    counted: list[str] = []
    count = tokens.count_tokens
    monkeypatch.setattr(
        tokens, "count_tokens", lambda text, *, model_id: counted.append(text) or count(text, model_id=model_id)
    )
    select(history=history, history_limit=50, content_tokens=[3] * 41)
    assert not any(text.startswith("message number") for text in counted)  # Roles and the head only.
