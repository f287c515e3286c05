from django import template

from conversations import bubbles, dom, rendering

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
