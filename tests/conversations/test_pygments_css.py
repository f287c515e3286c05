"""Highlighted code's colours (static/css/pygments.css): generated, and readable in both themes (WCAG 2.2 AA)."""

from pathlib import Path

import pytest
from pygments.styles import get_style_by_name
from pygments.token import Error, Keyword, Whitespace

from conversations.management.commands import pygments_css

SITE_CSS = Path(__file__).resolve().parents[2] / "static" / "css" / "site.css"


def _luminance(hex_colour: str) -> float:
    """WCAG 2.2 relative luminance of #rrggbb (https://www.w3.org/TR/WCAG22/#dfn-relative-luminance)."""
    channels = [int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _expand(colour: str) -> str:
    colour = colour.lstrip("#")
    return "#" + ("".join(c * 2 for c in colour) if len(colour) == 3 else colour)


def test_the_stylesheet_is_what_the_command_writes():
    assert pygments_css.stylesheet_path().read_text() == pygments_css.stylesheet(), "run `manage.py pygments_css`"


def test_the_code_backgrounds_are_site_css_code_bg():
    css = SITE_CSS.read_text()

    assert f"--code-bg: light-dark({pygments_css.LIGHT_CODE_BG}, {pygments_css.DARK_CODE_BG})" in css


@pytest.mark.parametrize(
    ("style_name", "background"),
    [
        (pygments_css.LIGHT_STYLE, pygments_css.LIGHT_CODE_BG),
        (pygments_css.DARK_STYLE, pygments_css.DARK_CODE_BG),
    ],
)
def test_every_token_colour_has_aa_contrast_on_its_themes_code_background(style_name, background):
    style = get_style_by_name(style_name)
    low = {
        str(token): round(_contrast(_expand(spec["color"]), background), 2)
        for token, spec in style
        if spec["color"] and token not in Whitespace and token not in Error
    }

    assert low and all(ratio >= 4.5 for ratio in low.values()), {t: r for t, r in low.items() if r < 4.5}


def test_dark_rules_apply_under_the_dark_theme_and_under_system_when_the_browser_prefers_dark():
    css = pygments_css.stylesheet()
    dark_keyword = get_style_by_name(pygments_css.DARK_STYLE).style_for_token(Keyword)["color"]

    assert f':root[data-theme="dark"] .markdown .highlight .k {{ color: #{dark_keyword}' in css
    media = css[css.index("@media (prefers-color-scheme: dark)") :]
    assert f':root[data-theme="system"] .markdown .highlight .k {{ color: #{dark_keyword}' in media
