"""The wire protocol of a conversation, described once.

Two directions:

- Browser → consumer: JSON text frames (htmx ws extension, `ws-send`), at most
  `settings.CHAT_MAX_FRAME_BYTES` bytes. htmx adds a `HEADERS` key, ignored.
- Channel layer events between the consumer(s) and the reply generator, over
  the groups named below. Every tab of a conversation, on any worker, joins
  its conversation group; the generator of a reply joins the control group.

Consumers turn events into HTML fragments with `hx-swap-oob`; the browser
never receives JSON. Group names come from public ids only (Channels allows
ASCII letters, digits, hyphens, underscores and periods, under 100 characters).
"""

from typing import Literal, NotRequired, TypedDict
from uuid import UUID


def conversation_group(conversation_id: UUID) -> str:
    """Return the group every open tab of a conversation joins."""
    return f"conversation.{conversation_id.hex}"


def control_group(conversation_id: UUID) -> str:
    """Return the group a running reply generator of the conversation listens on."""
    return f"control.{conversation_id.hex}"


# Browser → consumer frames


class SendFrame(TypedDict):
    """Send a user message. `idempotency_key`: up to 64 characters chosen by the page per send."""

    action: Literal["send"]
    message: str
    idempotency_key: NotRequired[str]


class StopFrame(TypedDict):
    """Stop every reply streaming in this conversation."""

    action: Literal["stop"]


# Channel layer events (the `type` selects the handler method: "reply.delta" → reply_delta)


class MessagesAdded(TypedDict):
    """New bubbles (the user message and the empty assistant bubble), as rendered HTML."""

    type: Literal["messages.added"]
    html: str


class ReplyDelta(TypedDict):
    """Reply text that arrived since the previous delta. `seq` counts from 1 per reply, no gaps."""

    type: Literal["reply.delta"]
    message_id: str
    seq: int
    text: str


class ReplySnapshot(TypedDict):
    """All reply text sent so far (deltas 1..`seq`), for a tab that joined mid-reply."""

    type: Literal["reply.snapshot"]
    message_id: str
    seq: int
    text: str


class ReplyFinal(TypedDict):
    """The finished bubble, rendered and sanitized; complete even if deltas were dropped."""

    type: Literal["reply.final"]
    message_id: str
    html: str


class ReplyStop(TypedDict):
    """Control: stop the running reply (sent by any tab, on any worker)."""

    type: Literal["reply.stop"]


class ReplySync(TypedDict):
    """Control: answer with a `ReplySnapshot` sent to `reply_channel`."""

    type: Literal["reply.sync"]
    reply_channel: str
