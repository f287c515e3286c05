"""Choose what a reply sees: the system prompt, the greeting, the new message and as much recent history as fits.

Pure: no database, no network. The caller passes the texts and the limits
and sends `UpstreamContext.messages` upstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.formats import number_format
from django.utils.translation import gettext

from llm import tokens as token_count
from llm.types import Content

# Reply reserve when neither the persona nor the model sets max_tokens. The
# API then lets a reply use whatever the prompt leaves of the context window,
# so a prompt that filled it would leave none. 1,024 tokens is about 750
# English words (OpenAI's rule of thumb: a token is about 3/4 of a word, "What
# are tokens and how to count them?"), a long chat answer; a quarter of the
# window caps it for small local models (2,048 tokens keep 1,536 for the prompt).
DEFAULT_REPLY_TOKENS = 1024


@dataclass(frozen=True)
class UpstreamContext:
    """What one reply is asked with, and how much history made it in.

    messages: {"role", "content"} dicts in send order: the system prompt (if
        not blank), the greeting (if any), the kept history, the new message;
        content is text, or content parts for a user message with images.
    kept_count: history messages sent, the new message included (>= 1).
    total_count: history messages there were, the new message included.
    tokens: prompt tokens of `messages` as `tokens.count_chat_tokens` counts
        them (reply priming included).
    budget: prompt tokens allowed, the context window less the reply's
        reserve; None when the context window is unknown.
    exact: whether `tokens` is the model's real count rather than about.
    """

    messages: list[dict[str, Content]]
    kept_count: int
    total_count: int
    tokens: int
    budget: int | None
    exact: bool


class ContextTooLarge(Exception):
    """The new message does not fit the context window even with no earlier history.

    tokens: about how many tokens the new message takes.
    budget: how many the context window leaves for it once the system prompt,
        the greeting and the reply's reserve are counted (0 when they fill it).
    The exception's text tells a person what to do.
    """

    def __init__(self, tokens: int, budget: int) -> None:
        self.tokens = tokens
        self.budget = budget
        if budget > 0:
            text = gettext(
                "Your message is about %(tokens)s tokens; this model's context window leaves room for "
                "%(budget)s. Shorten it or start a new chat."
            ) % {
                "tokens": number_format(tokens, force_grouping=True),
                "budget": number_format(budget, force_grouping=True),
            }
        else:
            text = gettext(
                "This chat's persona leaves no room for a message in its model's context window. "
                "Ask an admin to shorten the persona's system prompt or greeting, or to lower its max tokens."
            )
        super().__init__(text)


def reply_reserve(*, context_window: int, max_tokens: int | None) -> int:
    """Return the tokens kept free for the reply: `max_tokens`, or min(1024, context_window // 4) when unset."""
    if max_tokens is not None:
        return max_tokens
    return min(DEFAULT_REPLY_TOKENS, context_window // 4)


def select_context(
    *,
    system_prompt: str,
    greeting: str | None,
    history: Sequence[tuple[str, Content]],
    history_limit: int,
    context_window: int | None,
    max_tokens: int | None,
    model_id: str,
    content_tokens: Sequence[int | None] = (),
) -> UpstreamContext:
    """Return the messages to send for a new reply, keeping as much recent history as fits.

    history: (role, content) pairs, oldest first, the greeting left out; the
        last one is the new user message. Content is text, or content parts
        (`llm.types.Content`) for a user message with images.
    history_limit: the persona's limit in messages, the new message included;
        below 1 counts as 1.
    context_window: the model's, in tokens; None means unknown, and only
        `history_limit` applies.
    max_tokens: the reply's limit in tokens, reserved out of the context
        window; None reserves `reply_reserve`'s default.
    content_tokens: per `history` item, its content's `tokens.count_tokens`
        when known (stored with the message), else None or left out: those
        are counted here. Known counts keep a send's work from growing with
        the length of the messages it looks back on.

    The system prompt, the greeting and the new message always go. Earlier
    messages go newest first while both the message limit and the token
    budget allow; the first one that does not fit ends the history, so no
    message in the middle is skipped to fit an older one. The budget is the
    context window less the reply's tokens, since "the total length of input
    tokens and generated tokens is limited by the model's context length"
    (OpenAI API reference, Chat Completions, max_tokens).
    Tokens are counted with `tokens.count_chat_tokens`, exactly for OpenAI's
    model families and about for the rest.

    Raises:
        ContextTooLarge: the system prompt, greeting and new message alone
            exceed the budget.
        ValueError: `history` is empty.
    """
    if not history:
        raise ValueError("history must end with the new user message")
    head: list[dict[str, Content]] = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    if greeting:
        head.append({"role": "assistant", "content": greeting})
    role, content = history[-1]
    new: dict[str, Content] = {"role": role, "content": content}

    budget = None
    if context_window is not None:
        budget = max(context_window - reply_reserve(context_window=context_window, max_tokens=max_tokens), 0)
    head_tokens = token_count.REPLY_PRIMING_TOKENS + sum(
        token_count.count_message_tokens(m, model_id=model_id) for m in head
    )
    known = list(content_tokens) + [None] * (len(history) - len(content_tokens))
    new_tokens = token_count.count_message_tokens(new, model_id=model_id, content_tokens=known[-1])
    used = head_tokens + new_tokens
    if budget is not None and used > budget:
        raise ContextTooLarge(new_tokens, max(budget - head_tokens, 0))

    kept: list[dict[str, Content]] = []
    first = max(len(history) - max(history_limit, 1), 0)
    for index in range(len(history) - 2, first - 1, -1):
        role, content = history[index]
        message: dict[str, Content] = {"role": role, "content": content}
        cost = token_count.count_message_tokens(message, model_id=model_id, content_tokens=known[index])
        if budget is not None and used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    return UpstreamContext(
        messages=[*head, *kept, new],
        kept_count=len(kept) + 1,
        total_count=len(history),
        tokens=used,
        budget=budget,
        exact=token_count.is_exact(model_id),
    )
