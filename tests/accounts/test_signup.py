import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-42"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # allauth counts sign-ups and logins per IP in the cache; tests must not share the count.
    cache.clear()
    yield
    cache.clear()


def _sign_up(username: str, email: str = "") -> Client:
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return client


def test_signup_page_asks_for_username_optional_email_and_two_passwords(client):
    response = client.get("/accounts/signup/")

    assert response.status_code == 200
    form = response.context["form"]
    assert {"username", "email", "password1", "password2"} <= set(form.fields)
    assert not form.fields["email"].required


def test_first_sign_up_becomes_superuser_and_staff():
    _sign_up("first", "first@example.com")

    user = get_user_model().objects.get(username="first")
    assert user.is_superuser and user.is_staff


def test_second_sign_up_is_an_ordinary_user():
    _sign_up("first")

    _sign_up("second")

    second = get_user_model().objects.get(username="second")
    assert not second.is_superuser and not second.is_staff
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_sign_up_logs_the_new_user_in():
    client = _sign_up("first")

    assert int(client.session["_auth_user_id"]) == get_user_model().objects.get(username="first").pk


def test_sign_up_with_mismatched_passwords_creates_no_account(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "first", "password1": PASSWORD, "password2": PASSWORD + "x"},
    )

    assert response.status_code == 200
    assert response.context["form"].errors
    assert not get_user_model().objects.exists()


def test_login_and_logout(client, alice):
    response = client.post("/accounts/login/", {"login": "alice", "password": "alice-password-1"})

    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == alice.pk

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_login_with_a_wrong_password_fails(client, alice):
    response = client.post("/accounts/login/", {"login": "alice", "password": "wrong-password"})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_password_reset_mails_a_link_that_sets_a_new_password(client, alice, settings):
    settings.CHAT_EMAIL_ENABLED = True  # a site with a mail server (DJANGO_EMAIL_URL); pytest-django collects the mail
    response = client.post("/accounts/password/reset/", {"email": "alice@example.com"})

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.com"]
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/\S+/)", mail.outbox[0].body).group(1)

    form_page = client.get(link, follow=True)
    set_url = form_page.redirect_chain[-1][0] if form_page.redirect_chain else link
    response = client.post(set_url, {"password1": "a-brand-new-pass-77", "password2": "a-brand-new-pass-77"})

    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a-brand-new-pass-77")


def test_anonymous_user_is_sent_to_login(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"
