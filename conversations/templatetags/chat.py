from django import template

from conversations import rendering

register = template.Library()


@register.filter
def rendered(html: str):
    """Output HTML stored by `rendering.render_markdown` (already sanitized) without escaping it."""
    return rendering.stored_html(html)
