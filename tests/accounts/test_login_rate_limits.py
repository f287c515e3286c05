"""Failed logins are throttled (allauth's rate limits, settings.ACCOUNT_RATE_LIMITS) in the shared cache."""

import uuid

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

pytestmark = pytest.mark.django_db

TOO_MANY = "Too many failed login attempts. Try again later."
WRONG = "The username and/or password you specified are not correct."


@pytest.fixture(autouse=True)
def _own_cache_keys(settings):
    # Counts live in the configured cache (Redis under REDIS_URL): a prefix of
    # its own keeps this test's counts from meeting any other test's.
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


def _log_in(client, username: str, password: str, address: str = "192.0.2.10"):
    return client.post(reverse("account_login"), {"login": username, "password": password}, REMOTE_ADDR=address)


def test_after_five_failed_logins_the_right_password_is_refused_too(client, alice):
    for _ in range(5):
        assert WRONG in _log_in(client, "alice", "wrong-password").content.decode()

    response = _log_in(client, "alice", "alice-password-1")

    assert response.status_code == 429
    assert response["Retry-After"] == "300"  # the 5-minute window of ACCOUNT_RATE_LIMITS
    assert TOO_MANY in response.content.decode()
    assert SESSION_KEY not in client.session


def test_a_wrong_password_before_the_lockout_is_an_ordinary_form_error(client, alice):
    response = _log_in(client, "alice", "wrong-password")

    assert response.status_code == 200 and "Retry-After" not in response
    assert WRONG in response.content.decode()


def test_retry_after_is_the_longest_window_of_the_failed_login_limits(settings):
    from accounts.views import login_lockout_s

    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "20/5m/ip, 5/1h/key,3/90/user"}
    assert login_lockout_s() == 3600


def test_failed_logins_for_one_account_do_not_lock_out_another(client, alice, bob):
    for _ in range(5):
        _log_in(client, "alice", "wrong-password")

    response = _log_in(client, "bob", "bob-password-1")

    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(bob.pk)


def test_an_address_guessing_many_accounts_is_locked_out(client, bob):
    for n in range(20):
        _log_in(client, f"someone-{n}", "guess")

    response = _log_in(client, "bob", "bob-password-1")

    assert response.status_code == 429 and TOO_MANY in response.content.decode()
    assert _log_in(client, "bob", "bob-password-1", address="198.51.100.7").status_code == 302


def test_a_team_behind_one_address_has_room_for_typos(client, bob):
    # Eleven people behind one NAT each mistype once: nobody is locked out yet.
    for n in range(11):
        assert WRONG in _log_in(client, f"colleague-{n}", "typo").content.decode()

    assert _log_in(client, "bob", "bob-password-1").status_code == 302
