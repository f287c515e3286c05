"""The DOM ids of a conversation page that fragments swap into, named in this one place.

Ids come from public ids only (`message-<uuid>`), so a swap hits one node.
Templates use the filters of the same names (`templatetags/chat.py`); a
bubble also carries `data-message-id`, which chat.js reads.
"""

from uuid import UUID


def message_dom_id(public_id: UUID | str) -> str:
    """Return the id of a message's bubble (`<article>`): `message-<uuid>`."""
    return f"message-{public_id}"


def message_body_dom_id(public_id: UUID | str) -> str:
    """Return the id of the element holding a message's text inside its bubble."""
    return f"{message_dom_id(public_id)}-body"
