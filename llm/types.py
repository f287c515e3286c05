"""The values the provider client takes and yields: where to call, what to ask, what comes back."""

from dataclasses import dataclass
from typing import Any

# A chat message's content: text, or (a user message with images) OpenAI content parts,
# [{"type": "text", "text": ...}, {"type": "image_url", "image_url": {"url": ...}}]
# (OpenAI API reference, Chat Completions, "content" of a user message).
Content = str | list[dict[str, Any]]


@dataclass(frozen=True)
class UpstreamConfig:
    """Where and how to call one provider; timeouts in seconds."""

    base_url: str
    api_key: str
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    total_timeout_s: float = 600.0

    def __repr__(self) -> str:  # Keep the key out of logs and tracebacks.
        return f"UpstreamConfig(base_url={self.base_url!r}, api_key='***')"


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request: `messages` as the API takes them ({"role", "content": `Content`})."""

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Delta:
    """A piece of reply text, in arrival order."""

    text: str


@dataclass(frozen=True)
class Finish:
    """The end of a stream: why it stopped and the usage the upstream reported."""

    finish_reason: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
