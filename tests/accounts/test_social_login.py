"""Sign-in with an identity provider: OpenID Connect against a fake provider on loopback, Feishu's redirect.

The fake provider (tests/fakes/oidc_server.py) speaks the real protocol;
allauth's own openid_connect provider talks to it over HTTP. The browser's
part (following redirects between the two sites) is played by the test
client for this site and `requests` for the provider.
"""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.contrib.auth import get_user_model
from django.core.cache import cache

from accounts.models import SiteSettings
from accounts.selectors import site_settings
from tests.fakes.oidc_server import FakeOIDCProvider, FakeUser

pytestmark = pytest.mark.django_db
User = get_user_model()
LOGIN_URL = "/accounts/oidc/school/login/"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def provider():
    with FakeOIDCProvider(redirect_hosts=("testserver",)) as fake:  # the test client's host
        yield fake


@pytest.fixture
def school_app(provider):
    """The admin's "Social application" for the fake provider, as it is configured in the admin."""
    return SocialApp.objects.create(
        provider="openid_connect",
        provider_id="school",
        name="School account",
        client_id=provider.client_id,
        secret=provider.client_secret,
        settings={"server_url": provider.issuer, "oauth_pkce_enabled": True},
    )


@pytest.fixture(autouse=True)
def _an_admin_exists(django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")


def sign_in(client, provider):
    """Go through the code flow: our login view, the provider's authorize, our callback. Return the last response."""
    response = client.post(LOGIN_URL)
    assert response.status_code == 302 and response.url.startswith(f"{provider.issuer}/authorize?")
    authorize = parse_qs(urlsplit(response.url).query)
    assert authorize["client_id"] == [provider.client_id] and "code_challenge" in authorize
    at_provider = requests.get(response.url, allow_redirects=False, timeout=10)
    assert at_provider.status_code == 302, at_provider.text
    callback = urlsplit(at_provider.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def test_the_login_page_offers_the_configured_provider(client, school_app):
    page = client.get("/accounts/login/").content.decode()
    assert "School account" in page and LOGIN_URL in page


def test_a_first_sign_in_makes_an_account_from_the_providers_claims(client, provider, school_app):
    response = sign_in(client, provider)

    assert response.status_code == 302 and response.url == "/"
    user = User.objects.get(username="ada")
    assert user.email == "ada@school.example"
    assert int(client.session["_auth_user_id"]) == user.pk
    assert SocialAccount.objects.get(user=user).uid == "fake-user-1"
    assert [path for method, path in provider.requests if method == "POST"] == ["/token"]
    assert ("GET", "/userinfo") in provider.requests


def test_a_second_sign_in_finds_the_same_account(client, provider, school_app):
    sign_in(client, provider)
    client.logout()
    sign_in(client, provider)
    assert User.objects.filter(username="ada").count() == 1
    assert int(client.session["_auth_user_id"]) == User.objects.get(username="ada").pk


def test_closed_sign_up_refuses_a_new_identity_but_lets_a_known_one_in(client, provider, school_app):
    sign_in(client, provider)
    client.logout()
    row = site_settings()
    row.signup_mode = SiteSettings.SignupMode.CLOSED
    row.save()

    sign_in(client, provider)  # known identity
    assert "_auth_user_id" in client.session
    client.logout()
    provider.user = FakeUser(sub="fake-user-2", email="eve@school.example", preferred_username="eve")
    response = sign_in(client, provider)
    assert not User.objects.filter(username="eve").exists() and "_auth_user_id" not in client.session
    assert (
        'id="signup-closed"' in (client.get(response.url) if response.status_code == 302 else response).content.decode()
    )


def test_domain_limited_sign_up_checks_the_providers_email(client, provider, school_app):
    row = site_settings()
    row.signup_mode = SiteSettings.SignupMode.DOMAINS
    row.signup_domains = "school.example"
    row.save()
    sign_in(client, provider)
    assert User.objects.filter(username="ada").exists()
    client.logout()
    provider.user = FakeUser(sub="fake-user-3", email="mallory@elsewhere.example", preferred_username="mallory")
    sign_in(client, provider)
    assert not User.objects.filter(username="mallory").exists()


def test_a_code_is_good_only_once(client, provider, school_app):
    response = client.post(LOGIN_URL)
    callback = urlsplit(requests.get(response.url, allow_redirects=False, timeout=10).headers["Location"])
    client.get(f"{callback.path}?{callback.query}")
    client.logout()
    replay = client.get(f"{callback.path}?{callback.query}")
    assert "_auth_user_id" not in client.session and replay.status_code == 401  # allauth's "authentication error"


def test_feishu_sign_in_sends_the_browser_to_feishus_authorize_page(client):
    SocialApp.objects.create(provider="feishu", name="Feishu", client_id="cli_a1b2c3", secret="s3cret")
    assert "/accounts/feishu/login/" in client.get("/accounts/login/").content.decode()
    response = client.post("/accounts/feishu/login/")
    assert response.status_code == 302
    target = urlsplit(response.url)
    assert target.hostname == "open.feishu.cn" and parse_qs(target.query)["app_id"] == ["cli_a1b2c3"]


def form_action(response) -> str:
    policy = response["Content-Security-Policy"]
    return next(part.strip() for part in policy.split(";") if part.strip().startswith("form-action"))


def test_only_the_provider_sign_in_page_may_post_on_to_the_providers(client, provider, school_app):
    SocialApp.objects.create(provider="feishu", name="Feishu", client_id="cli_a1b2c3", secret="s3cret")
    confirm = client.get(LOGIN_URL)
    assert confirm.status_code == 200
    assert form_action(confirm) == f"form-action 'self' {provider.issuer} https://open.feishu.cn"
    assert form_action(client.get("/accounts/login/")) == "form-action 'self'"
    assert form_action(client.get("/accounts/signup/")) == "form-action 'self'"
