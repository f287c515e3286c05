"""The translation catalogs, checked against the source: every string a person reads is translated, and compiled.

The strings are extracted here without GNU gettext: Python and JavaScript
with Babel's extractors, templates through Django's own `templatize` (what
makemessages feeds xgettext) and then Babel's Python extractor. A string
wrapped in the source but missing from a Chinese catalog, left fuzzy or
empty there, or a committed .mo that does not hold what its .po says (run
`make messages` / `make compilemessages`), fails here.
"""

import gettext
import io
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.pofile import read_po
from django.conf import settings
from django.utils.translation import to_locale
from django.utils.translation.template import templatize

from tests.test_architecture import PACKAGES

ROOT = Path(__file__).resolve().parents[1]
LOCALE_DIR = ROOT / "locale"
# Every language the site offers, but English, the source's own.
LOCALES = [to_locale(code) for code, _name in settings.LANGUAGES if code != "en"]
DOMAINS = ("django", "djangojs")

# Django's translation functions (makemessages' xgettext keywords) and their argument layout in Babel's notation.
PYTHON_KEYWORDS = {
    "_": None,
    "gettext": None,
    "gettext_lazy": None,
    "gettext_noop": None,
    "ngettext": (1, 2),
    "ngettext_lazy": (1, 2),
    "pgettext": ((1, "c"), 2),
    "pgettext_lazy": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
    "npgettext_lazy": ((1, "c"), 2, 3),
}
# The functions of Django's JavaScript catalog (/jsi18n/).
JS_KEYWORDS = {"gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "npgettext": ((1, "c"), 2, 3)}

Key = tuple[str | None, str | tuple[str, ...]]  # (context, msgid or (singular, plural))


def _extracted(method: str, source: bytes, keywords: dict) -> set[Key]:
    return {(context, message) for _line, message, _comments, context in extract(method, io.BytesIO(source), keywords)}


def source_strings(domain: str) -> dict[Key, str]:
    """Return the translatable strings of `domain` in the project's source, each with a file it is in."""
    found: dict[Key, str] = {}
    if domain == "django":
        for package in PACKAGES:
            for path in (ROOT / package).rglob("*.py"):
                if "migrations" not in path.parts:
                    found |= dict.fromkeys(
                        _extracted("python", path.read_bytes(), PYTHON_KEYWORDS), str(path.relative_to(ROOT))
                    )
        for path in (ROOT / "templates").rglob("*.html"):
            # templatize keeps each string on its template line; Python's tokenizer wants no indentation.
            code = "\n".join(line.strip() for line in templatize(path.read_text(), origin=str(path)).splitlines())
            found |= dict.fromkeys(_extracted("python", code.encode(), PYTHON_KEYWORDS), str(path.relative_to(ROOT)))
    else:
        for path in (ROOT / "static" / "js").rglob("*.js"):
            found |= dict.fromkeys(
                _extracted("javascript", path.read_bytes(), JS_KEYWORDS), str(path.relative_to(ROOT))
            )
    return found


def catalog(locale: str, domain: str) -> Catalog:
    with open(LOCALE_DIR / locale / "LC_MESSAGES" / f"{domain}.po", "rb") as po:
        return read_po(po, locale=locale)


def test_the_source_has_strings_to_translate():
    # The extraction itself works: if it found nothing, every other test here would pass vacuously.
    strings = source_strings("django")
    assert (None, "New chat") in strings
    assert (None, ("%(tokens)s token", "%(tokens)s tokens")) in strings  # a template's {% blocktranslate count %}
    assert (None, "Today") in strings  # Python


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_string_of_the_source_is_translated(locale, domain):
    entries = {(message.context, message.id): message for message in catalog(locale, domain) if message.id}
    problems = []
    for key, path in sorted(source_strings(domain).items(), key=str):
        message = entries.get(key)
        strings = (
            message.string
            if message is not None and isinstance(message.string, tuple)
            else (message and message.string,)
        )
        if message is None:
            problems.append(f"missing: {key[1]!r} ({path})")
        elif message.fuzzy:
            problems.append(f"fuzzy: {key[1]!r} ({path})")
        elif not all(strings):
            problems.append(f"untranslated: {key[1]!r} ({path})")
    assert not problems, (
        f"locale/{locale}/LC_MESSAGES/{domain}.po (run `make messages`, then translate):\n" + "\n".join(problems)
    )


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("locale", LOCALES)
def test_translations_keep_the_placeholders_of_their_strings(locale, domain):
    # Babel's checks: a msgstr with a %(name)s its msgid lacks (or a type it changes) would raise at runtime.
    problems = [f"{message.id!r}: {errors}" for message, errors in catalog(locale, domain).check()]
    assert not problems


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("locale", LOCALES)
def test_the_compiled_catalog_holds_what_its_po_file_says(locale, domain):
    expected: dict[object, str] = {}
    for message in catalog(locale, domain):
        if not message.id or message.fuzzy:
            continue
        prefix = f"{message.context}\x04" if message.context else ""
        if isinstance(message.id, tuple):
            for index, text in enumerate(message.string):
                if text:
                    expected[(prefix + message.id[0], index)] = text
        elif message.string:
            expected[prefix + message.id] = message.string
    with open(LOCALE_DIR / locale / "LC_MESSAGES" / f"{domain}.mo", "rb") as mo:
        compiled = dict(gettext.GNUTranslations(mo)._catalog)  # type: ignore[attr-defined]
    compiled.pop("", None)  # the header
    assert compiled == expected, f"locale/{locale}/LC_MESSAGES/{domain}.mo is stale: run `make compilemessages`"
