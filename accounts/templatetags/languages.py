"""Template filters for the interface language."""

from django import template

register = template.Library()


@register.filter
def language_tag(code: str) -> str:
    """Return a Django language code as a BCP 47 tag for `<html lang>`: "zh-hans" → "zh-Hans", "en-us" → "en-US".

    Subtags' case follows RFC 5646 §2.1.1: a 4-letter script in title case, a 2-letter region in upper case.
    """
    language, *subtags = code.split("-")
    cased = [tag.title() if len(tag) == 4 else tag.upper() if len(tag) == 2 else tag for tag in subtags]
    return "-".join([language.lower(), *cased])
