"""The Content-Security-Policy in Chromium: chatting, the admin and the sign-in pages run with no violation.

Every `securitypolicyviolation` event of every page the browser loads is
reported to the test (an init script, which CSP does not govern, listens
from the first moment of each document). The first test proves the listener
sees a violation, so the others cannot pass for want of one.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from conversations import services
from tests.e2e.pages import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} on ${event.documentURI}: ${event.sample}`
  );
});
"""
ASSISTANT = "article.message[data-role=assistant]"
PASSWORD = "correct-horse-battery-42"


@pytest.fixture
def violations(page: Page) -> list[str]:
    """The CSP violations of every page loaded from now on, and the console's CSP errors."""
    found: list[str] = []
    page.expose_function("reportCspViolation", lambda text: found.append(text))
    page.add_init_script(LISTENER)
    page.on(
        "console",
        lambda message: found.append(f"console: {message.text}") if "Content Security Policy" in message.text else None,
    )
    return found


def _log_in(page: Page, site, user) -> None:
    sign_in(page.context, site, user)


def _visit(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response.status == 200, url
    assert "script-src 'self'" in response.headers["content-security-policy"], url


def test_the_listener_sees_a_violation(page, site, alice, violations):
    _log_in(page, site, alice)
    _visit(page, site.url("/"))

    page.evaluate("() => { const s = document.createElement('script'); s.textContent = '1'; document.body.append(s); }")

    for _ in range(100):  # The event's report arrives asynchronously.
        if any(v.startswith("script-src") for v in violations):
            break
        page.wait_for_timeout(50)
    assert any(re.match(r"script-src(-elem)? blocked inline", v) for v in violations), violations


def test_chatting_with_a_streamed_reply_violates_nothing(page, site, alice, make_persona, violations):
    persona = make_persona("long:30+delay:20", slug="slow", greeting="Hi there.")
    conversation = services.conversation_create(owner=alice, persona=persona)
    _log_in(page, site, alice)
    _visit(page, site.url("/"))
    _visit(page, site.url(conversation.get_absolute_url()))

    composer = page.locator("#composer textarea[name=message]")
    composer.fill("A long answer, please")
    composer.press("Enter")

    # The reply streams over the websocket (connect-src 'self' lets ws: to the same origin through) ...
    expect(page.locator(f"{ASSISTANT}[data-status=streaming] .message-body")).to_contain_text("w0")
    # ... and is replaced by the rendered bubble.
    expect(page.locator(f"{ASSISTANT}[data-status=complete]").last.locator(".message-body")).to_contain_text(
        "w29", timeout=20_000
    )
    assert violations == []


def test_the_admin_works_and_violates_nothing(page, site, alice, persona, violations):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "root-password-1")
    services.conversation_create(owner=alice, persona=persona)
    _log_in(page, site, admin)
    for path in (
        "/admin/",
        "/admin/personas/provider/",
        f"/admin/personas/provider/{persona.model.provider.pk}/change/",
        "/admin/personas/chatmodel/",
        "/admin/conversations/conversation/",
        f"/admin/auth/user/{alice.pk}/change/",
    ):
        _visit(page, site.url(path))

    # The admin's own scripts run: the persona form fills the slug from the name ...
    _visit(page, site.url("/admin/personas/persona/add/"))
    page.locator("#id_name").press_sequentially("Night Owl")
    expect(page.locator("#id_slug")).to_have_value("night-owl")
    # ... and the group form turns its permission list into the two-box selector.
    _visit(page, site.url("/admin/auth/group/add/"))
    expect(page.locator("#id_permissions_add_all")).to_be_visible()
    assert violations == []


def test_sign_in_pages_work_and_violate_nothing(page, site, violations):
    _visit(page, site.url("/accounts/password/reset/"))
    _visit(page, site.url("/accounts/signup/"))
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.locator("form:has(input[name=password2]) [type=submit]").click()
    expect(page).to_have_url(site.url("/"))
    for path in ("/accounts/password/change/", "/accounts/email/", "/accounts/logout/"):
        _visit(page, site.url(path))
    page.locator("main form:has([type=submit]) [type=submit]").last.click()
    expect(page).to_have_url(re.compile(r"/(accounts/login/)?$"))

    _visit(page, site.url("/accounts/login/"))
    page.fill("input[name=login]", "carol")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    expect(page).to_have_url(site.url("/"))
    assert violations == []
