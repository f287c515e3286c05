"""Short conversation titles, written by the conversation's own model after its first reply.

Until a title is generated, and whenever generation fails, the title is the
first line of the first message (`services.title_from_text`). A title the user
typed is never replaced. The request is a small non-streaming completion.
"""

import logging
import re
from uuid import UUID

from channels.db import database_sync_to_async

import llm
from conversations import events, services

logger = logging.getLogger(__name__)

TITLE_MAX_TOKENS = 24
TITLE_INSTRUCTION = (
    "Write a title of 2 to 6 words for this conversation, in the language the user wrote in. "
    "Reply with the title only: no quotes, no punctuation at the end."
)
_DECORATION = re.compile(r"^[\s#*_`\"'“”‘’「」《》]+|[\s*_`\"'“”‘’「」《》.。!！]+$")


def title_request(*, model_id: str, user_text: str, reply_text: str) -> llm.ChatRequest:
    """Return the completion request asking for a title; both texts are cut to 2,000 characters."""
    return llm.ChatRequest(
        model=model_id,
        messages=[
            {"role": "system", "content": TITLE_INSTRUCTION},
            {"role": "user", "content": user_text[:2000]},
            {"role": "assistant", "content": reply_text[:2000]},
            {"role": "user", "content": TITLE_INSTRUCTION},
        ],
        max_tokens=TITLE_MAX_TOKENS,
    )


def title_clean(text: str) -> str:
    """Return the model's answer as a one-line title without quotes or Markdown, or "" if nothing is left."""
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    line = re.sub(r"^(title|标题)\s*[:：]", "", _DECORATION.sub("", first_line), flags=re.IGNORECASE)
    return services.title_from_text(_DECORATION.sub("", line))


async def title_generate(
    *, config: llm.UpstreamConfig, conversation_id: UUID, model_id: str, user_text: str, reply_text: str
) -> str:
    """Ask the model for a title, store it unless the user renamed the chat meanwhile, and show it in every tab.

    Returns the stored title, or "" when the upstream failed or the title was
    not replaced (the first-line title stays).
    """
    try:
        answer = await llm.complete_once(
            config, title_request(model_id=model_id, user_text=user_text, reply_text=reply_text)
        )
    except llm.LLMError as exc:
        logger.info("Title generation failed for %s: %s", conversation_id, exc.kind)
        return ""
    title = title_clean(answer)
    if title:
        title = await database_sync_to_async(services.conversation_title_generated_set)(
            public_id=conversation_id, title=title
        )
    if not title:
        return ""
    # Sent here, on the loop: from the ORM thread (async_to_sync) a send holds that thread, which every database
    # call of the process waits for, until this loop has run it.
    changed = services.title_changed(conversation_id=conversation_id, title=title)
    await events.channel_layer().group_send(events.conversation_group(conversation_id), events.layer_message(changed))
    return title
