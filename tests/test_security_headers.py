"""Security headers and a Content-Security-Policy the pages can live with: no inline script or style anywhere.

The browser side (no violation while chatting, in the admin, on the sign-in
pages) is tests/e2e/test_csp.py; here are the headers and a scan of every
template, script and rendered page for what the policy would block.
"""

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib import admin
from django.urls import reverse

from conversations import services
from tests.conversations.history import make_conversation

BASE_DIR = Path(__file__).resolve().parent.parent
EXPECTED_CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# Script elements the browser does not run (data for a script), so script-src does not apply.
DATA_SCRIPT_TYPES = {"application/json", "text/template"}


def _csp(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    directives = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return dict(directives)


class _InlineFinder(HTMLParser):
    """Collect what CSP without 'unsafe-inline' blocks: inline scripts, <style>, style and on* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src") and names.get("type") not in DATA_SCRIPT_TYPES:
            self._in_inline_script = True
        if tag == "style":
            self.found.append("<style> element")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"{name}= on <{tag}>")
            if name in {"href", "src", "action", "formaction"} and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.found.append(f"javascript: URL in {name} of <{tag}>")

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.found.append(f"inline <script>: {data.strip()[:60]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False


def inline_code(html: str) -> list[str]:
    """Return the inline scripts, styles and event handlers in `html`, described."""
    finder = _InlineFinder()
    finder.feed(html)
    return finder.found


# The headers


@pytest.mark.django_db
def test_chat_page_sends_the_security_headers(client, alice, persona):
    conversation = services.conversation_create(owner=alice, persona=persona)
    client.force_login(alice)

    response = client.get(conversation.get_absolute_url())

    assert response.status_code == 200
    assert _csp(response) == EXPECTED_CSP
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["account_login", "account_signup", "admin:login"])
def test_pages_for_anonymous_visitors_send_the_policy(client, url_name):
    response = client.get(reverse(url_name))

    assert response.status_code == 200
    assert _csp(response) == EXPECTED_CSP


@pytest.mark.django_db
def test_htmx_fragments_send_the_policy(client, alice, persona):
    client.force_login(alice)

    response = client.get(reverse("conversations:conversation-new"), headers={"HX-Request": "true"})

    assert _csp(response) == EXPECTED_CSP


def _img_src(allow_remote_images: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_DEBUG": "1",
        "CHAT_ALLOW_REMOTE_IMAGES": allow_remote_images,
    }
    code = "import json, chatsite.settings as s; print(json.dumps(s.CONTENT_SECURITY_POLICY['DIRECTIVES']['img-src']))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def test_remote_images_are_allowed_over_https_only_when_the_site_allows_them():
    assert _img_src("0") == ["'self'"]
    assert _img_src("1") == ["'self'", "https:"]


# What the policy would block


@pytest.mark.django_db
def test_htmx_is_configured_to_need_no_inline_style_or_eval(client, alice):
    client.force_login(alice)

    html = client.get(reverse("conversations:conversation-new")).content.decode()

    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html).group(1))
    assert config["includeIndicatorStyles"] is False
    assert config["allowEval"] is False


@pytest.mark.parametrize(
    "path", sorted(str(p.relative_to(BASE_DIR)) for p in (BASE_DIR / "templates").rglob("*.html")), ids=str
)
def test_template_has_no_inline_script_or_style(path):
    source = (BASE_DIR / path).read_text()

    assert inline_code(source) == []


@pytest.mark.parametrize("path", sorted(str(p.relative_to(BASE_DIR)) for p in (BASE_DIR / "static/js").rglob("*.js")))
def test_site_script_neither_evaluates_code_nor_writes_style_attributes(path):
    source = (BASE_DIR / path).read_text()

    # Setting element.style.x (CSSOM) is allowed by CSP; a style attribute, eval and HTML strings are not.
    forbidden = [
        r"\beval\(",
        r"new Function\(",
        r"setAttribute\(\s*['\"]style",
        r"\.cssText\b",
        r"innerHTML\s*=",
        r"insertAdjacentHTML",
    ]
    assert [pattern for pattern in forbidden if re.search(pattern, source)] == []


@pytest.mark.django_db
def test_site_pages_render_without_inline_script_or_style(client, alice, persona):
    conversation = make_conversation(alice, persona)
    client.force_login(alice)
    urls = [
        reverse("conversations:conversation-new"),
        conversation.get_absolute_url(),
        reverse("conversations:conversation-rename", args=[conversation.public_id]),
        reverse("conversations:conversation-delete", args=[conversation.public_id]),
        reverse("conversations:conversation-archived-list"),
        reverse("conversations:search") + "?q=Lisbon",
        reverse("transfer:data"),
        reverse("account_change_password"),
        reverse("account_email"),
        reverse("account_logout"),
    ]

    found = {url: inline_code(client.get(url).content.decode()) for url in urls}

    assert found == {url: [] for url in urls}


@pytest.mark.django_db
def test_sign_in_pages_render_without_inline_script_or_style(client):
    urls = [reverse(name) for name in ("account_login", "account_signup", "account_reset_password")]

    found = {url: inline_code(client.get(url).content.decode()) for url in urls}

    assert found == {url: [] for url in urls}


@pytest.mark.django_db
def test_admin_pages_render_without_inline_script_or_style(admin_client, alice, persona):
    make_conversation(alice, persona)
    urls = [reverse("admin:index")]
    changelists = []
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        changelists.append(reverse(f"{prefix}_changelist"))
        urls += [changelists[-1], reverse(f"{prefix}_add")]
        if (obj := model._default_manager.first()) is not None:
            urls.append(reverse(f"{prefix}_change", args=[obj.pk]))

    found = {}
    for url in urls:
        response = admin_client.get(url, follow=True)  # A one-row model's list leads to its change page.
        if response.status_code == 200:
            found[url] = inline_code(response.content.decode())

    assert found == {url: [] for url in found}
    # Every model's list rendered (some models cannot be added: one-row settings, read-only records).
    assert set(changelists) <= set(found)
