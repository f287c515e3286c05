"""In the browser: sign-up closed, by invitation link, by email domain; sign-in with a fake OpenID Connect provider."""

import re

import pytest
from allauth.socialaccount.models import SocialApp
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from accounts import invitations
from accounts.models import Invitation, SiteSettings
from accounts.selectors import site_settings
from tests.fakes.oidc_server import FakeOIDCProvider

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct-horse-battery-42"


@pytest.fixture(autouse=True)
def _an_admin_exists(django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")


def configure(**fields) -> None:
    row = site_settings()
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()


def fill_signup(page: Page, username: str, email: str = "") -> None:
    page.fill("input[name=username]", username)
    if email:
        page.fill("input[name=email]", email)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("form button[type=submit]")


def test_closed_sign_up_shows_no_form(page: Page, site):
    configure(signup_mode=SiteSettings.SignupMode.CLOSED)
    page.goto(site.url("/accounts/signup/"))
    expect(page.locator("#signup-closed")).to_be_visible()
    expect(page.locator("input[name=password1]")).to_have_count(0)


def test_an_invitation_link_lets_one_person_sign_up(page: Page, site):
    configure(signup_mode=SiteSettings.SignupMode.INVITATION)
    invite = Invitation.objects.create(code=invitations.invitation_code_new(), max_uses=1)
    page.goto(site.url(f"/accounts/invite/{invite.code}/"))
    expect(page).to_have_url(re.compile(r"/accounts/signup/$"))
    fill_signup(page, "invitee")
    expect(page.locator("#account-link")).to_have_text("invitee")

    page.context.clear_cookies()
    page.goto(site.url(f"/accounts/invite/{invite.code}/"))
    expect(page.locator("#invitation-invalid")).to_be_visible()
    page.goto(site.url("/accounts/signup/"))
    expect(page.locator("#signup-closed")).to_be_visible()


def test_sign_up_limited_to_a_domain(page: Page, site):
    configure(signup_mode=SiteSettings.SignupMode.DOMAINS, signup_domains="school.example")
    page.goto(site.url("/accounts/signup/"))
    fill_signup(page, "outsider", "me@elsewhere.example")
    expect(page.locator("body")).to_contain_text("Sign-up is limited to email addresses at school.example.")
    assert not get_user_model().objects.filter(username="outsider").exists()
    fill_signup(page, "pupil", "pupil@school.example")
    expect(page.locator("#account-link")).to_have_text("pupil")


def test_sign_in_with_an_openid_connect_provider(page: Page, site, screenshot):
    with FakeOIDCProvider() as provider:
        SocialApp.objects.create(
            provider="openid_connect",
            provider_id="school",
            name="School account",
            client_id=provider.client_id,
            secret=provider.client_secret,
            settings={"server_url": provider.issuer},
        )
        page.goto(site.url("/accounts/login/"))
        page.get_by_role("link", name="School account").click()
        screenshot("confirm")
        page.get_by_role("button", name="Continue").click()
        expect(page.locator("#account-link")).to_have_text("ada")
        assert ("POST", "/token") in provider.requests
    user = get_user_model().objects.get(username="ada")
    assert user.email == "ada@school.example" and not user.is_staff
