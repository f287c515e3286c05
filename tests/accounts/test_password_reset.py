"""Password reset: a mail when the site has a mail server; else the page says to ask an admin, who can set it."""

import pytest
from django.core import mail
from django.urls import reverse

pytestmark = pytest.mark.django_db

RESET_URL = reverse("account_reset_password")


@pytest.fixture
def no_mail_server(settings):
    settings.CHAT_EMAIL_ENABLED = False


@pytest.fixture
def mail_server(settings):
    settings.CHAT_EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_without_a_mail_server_the_page_says_to_ask_an_admin(client, no_mail_server):
    page = client.get(RESET_URL).content.decode()

    assert "Ask an admin of this site to set a new password for you" in page
    assert "we have sent you" not in page.lower()
    assert 'name="email"' not in page


def test_without_a_mail_server_a_posted_form_sends_nothing_and_claims_nothing(client, alice, no_mail_server):
    response = client.post(RESET_URL, {"email": alice.email})

    assert response.status_code == 200
    assert mail.outbox == []
    assert "Ask an admin" in response.content.decode()


def test_with_a_mail_server_the_reset_link_is_mailed(client, alice, mail_server):
    page = client.get(RESET_URL).content.decode()
    assert 'name="email"' in page

    response = client.post(RESET_URL, {"email": alice.email})

    assert response.status_code == 302 and response["Location"] == reverse("account_reset_password_done")
    (message,) = mail.outbox
    assert message.to == [alice.email]
    assert "/accounts/password/reset/key/" in message.body
    done = client.get(response["Location"]).content.decode()
    assert "we have sent it a link" in done


def test_an_admin_sets_a_users_password_from_the_users_admin_page(admin_client, alice):
    change_page = admin_client.get(reverse("admin:auth_user_change", args=[alice.pk])).content.decode()
    password_url = reverse("admin:auth_user_password_change", args=[alice.pk])
    assert 'href="../password/"' in change_page or password_url in change_page

    form = admin_client.get(password_url)
    assert form.status_code == 200
    response = admin_client.post(
        password_url,
        {"password1": "a-new-long-password-9", "password2": "a-new-long-password-9", "usable_password": "true"},
    )

    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a-new-long-password-9")
