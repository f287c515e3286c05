from django import template

from conversations import dom, rendering

register = template.Library()


@register.filter
def rendered(html: str):
    """Output HTML stored by `rendering.render_markdown` (already sanitized) without escaping it."""
    return rendering.stored_html(html)


register.filter("message_dom_id", dom.message_dom_id)
register.filter("message_body_dom_id", dom.message_body_dom_id)
