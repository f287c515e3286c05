"""Talking to model providers: the only package that imports `openai`, and it knows no Django model.

- `client`: stream a chat completion, complete once, list models (any
  OpenAI-compatible API, through the official SDK).
- `errors`: every upstream failure as an `LLMError` with a kind and a message.
- `types`: the connection settings and request the client takes, the deltas it yields.
- `tokens`: offline token counting with the encodings shipped in `data/`.
- `context`: which messages fit a model's context window (pure, no database).

personas (providers, models) and conversations (replies, titles) depend on
this package; it depends on neither. The public names are re-exported here.
"""

from llm.client import complete_once, list_models, stream_chat
from llm.errors import ErrorKind, LLMError
from llm.types import ChatRequest, Delta, Finish, UpstreamConfig

__all__ = [
    "ChatRequest",
    "Delta",
    "ErrorKind",
    "Finish",
    "LLMError",
    "UpstreamConfig",
    "complete_once",
    "list_models",
    "stream_chat",
]
