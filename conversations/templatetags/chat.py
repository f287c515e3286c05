from django import template

from conversations import bubbles, dom, entries, rendering

register = template.Library()


@register.filter
def rendered(html: str):
    """Output HTML stored by `rendering.render_markdown` (already sanitized) without escaping it."""
    return rendering.stored_html(html)


register.filter("message_dom_id", dom.message_dom_id)
register.filter("message_body_dom_id", dom.message_body_dom_id)


@register.simple_tag
def bubble(message, conversation):
    """Output the bubble of `message` in `conversation` (`bubbles.render_bubble`)."""
    return bubbles.render_bubble(message, conversation)


@register.simple_tag(takes_context=True)
def conversation_rows(context, rows, current_id):
    """Output a page of the dated list: its entries under their date headers (`entries.render_rows`)."""
    return entries.render_rows(rows, current_id=current_id or None, csrf_token=context.get("csrf_token", ""))


@register.simple_tag(takes_context=True)
def conversation_entries(context, conversations, current_id):
    """Output the entries of `conversations`, pinned or in a folder (`entries.render_entries`)."""
    return entries.render_entries(
        conversations, current_id=current_id or None, csrf_token=context.get("csrf_token", "")
    )


@register.simple_tag(takes_context=True)
def conversation_entry(context, conversation, current_id):
    """Output the entry of `conversation` (`entries.render_entries`)."""
    return entries.render_entries(
        [conversation], current_id=current_id or None, csrf_token=context.get("csrf_token", "")
    )
