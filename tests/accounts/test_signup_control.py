"""Who may sign up (SiteSettings): open, closed, by invitation link, by email domain; approval; email verification."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import invitations
from accounts.models import Invitation, SiteSettings
from accounts.selectors import site_settings

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-42"
BASE_DIR = Path(__file__).resolve().parents[2]
User = get_user_model()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _an_admin_exists(django_user_model):
    # Not a fresh site: the first account would become the admin whatever the settings.
    django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")


def configure(**fields) -> SiteSettings:
    row = site_settings()
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    return row


def sign_up(client: Client, username: str, email: str = ""):
    return client.post(
        "/accounts/signup/", {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD}
    )


def invitation(**fields) -> Invitation:
    return Invitation.objects.create(code=invitations.invitation_code_new(), **fields)


def test_open_sign_up_is_the_default(client):
    assert site_settings().signup_mode == SiteSettings.SignupMode.OPEN
    assert sign_up(client, "newcomer").status_code == 302
    assert User.objects.filter(username="newcomer", is_active=True).exists()


def test_closed_sign_up_shows_a_page_and_makes_no_account(client):
    configure(signup_mode=SiteSettings.SignupMode.CLOSED)
    page = client.get("/accounts/signup/").content.decode()
    assert 'id="signup-closed"' in page
    sign_up(client, "intruder")
    assert not User.objects.filter(username="intruder").exists()


def test_a_single_use_invitation_makes_one_account(client):
    configure(signup_mode=SiteSettings.SignupMode.INVITATION)
    invite = invitation(max_uses=1)
    assert 'id="signup-closed"' in client.get("/accounts/signup/").content.decode()  # no link followed

    response = client.get(reverse("account-invitation", args=[invite.code]))
    assert response.status_code == 302 and response.url == "/accounts/signup/"
    assert sign_up(client, "invited").status_code == 302
    assert User.objects.filter(username="invited").exists()
    invite.refresh_from_db()
    assert invite.uses == 1

    other = Client()
    assert other.get(reverse("account-invitation", args=[invite.code])).status_code == 404
    sign_up(other, "second")
    assert not User.objects.filter(username="second").exists()


def test_a_multi_use_invitation_works_until_it_expires(client):
    configure(signup_mode=SiteSettings.SignupMode.INVITATION)
    invite = invitation(max_uses=0, expires_at=timezone.now() + timedelta(days=1))
    for name in ("one", "two", "three"):
        visitor = Client()
        visitor.get(reverse("account-invitation", args=[invite.code]))
        assert sign_up(visitor, name).status_code == 302
    assert User.objects.filter(username__in=["one", "two", "three"]).count() == 3

    Invitation.objects.filter(pk=invite.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = Client()
    response = late.get(reverse("account-invitation", args=[invite.code]))
    assert response.status_code == 404 and 'id="invitation-invalid"' in response.content.decode()


def test_an_invitation_expiring_between_link_and_form_makes_no_account(client):
    configure(signup_mode=SiteSettings.SignupMode.INVITATION)
    invite = invitation(max_uses=1)
    client.get(reverse("account-invitation", args=[invite.code]))
    Invitation.objects.filter(pk=invite.pk).update(uses=1)
    sign_up(client, "late")
    assert not User.objects.filter(username="late").exists()


def test_domain_limited_sign_up_accepts_only_listed_domains(client):
    configure(signup_mode=SiteSettings.SignupMode.DOMAINS, signup_domains="example.edu, @School.org")

    refused = sign_up(client, "outsider", "me@gmail.com")
    assert refused.status_code == 200
    assert "Sign-up is limited to email addresses at example.edu, school.org." in refused.content.decode()
    assert sign_up(Client(), "noemail").status_code == 200
    assert sign_up(Client(), "lookalike", "me@evil-example.edu").status_code == 200
    assert sign_up(Client(), "student", "student@SCHOOL.org").status_code == 302
    assert set(User.objects.values_list("username", flat=True)) == {"root", "student"}


def test_new_accounts_may_wait_for_approval(client):
    configure(signup_requires_approval=True)
    response = sign_up(client, "waiting")
    assert response.status_code == 302 and response.url == reverse("account_inactive")
    user = User.objects.get(username="waiting")
    assert not user.is_active and "_auth_user_id" not in client.session
    assert "approve" in client.get(response.url).content.decode()

    User.objects.filter(pk=user.pk).update(is_active=True)  # the admin ticks "Active"
    response = client.post("/accounts/login/", {"login": "waiting", "password": PASSWORD})
    assert response.status_code == 302 and int(client.session["_auth_user_id"]) == user.pk


def test_the_first_account_of_a_fresh_site_is_never_held_for_approval(client):
    User.objects.all().delete()
    configure(signup_requires_approval=True)
    sign_up(client, "founder")
    assert User.objects.get(username="founder").is_active


def test_with_mandatory_verification_the_address_is_confirmed_before_sign_in(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = sign_up(client, "verifier", "verifier@example.com")
    assert response.status_code == 302 and "_auth_user_id" not in client.session
    assert len(mail.outbox) == 1 and "verifier@example.com" in mail.outbox[0].to


def test_the_admin_changes_the_settings_on_one_page(admin_client):
    response = admin_client.get(reverse("admin:accounts_sitesettings_changelist"))
    assert response.status_code == 302
    page = admin_client.get(response.url).content.decode()
    assert "signup_mode" in page and "shares_visible_to_anonymous" in page
    response = admin_client.post(reverse("admin:accounts_invitation_add"), {"note": "class of 2027", "max_uses": "30"})
    assert response.status_code == 302
    made = Invitation.objects.get()
    assert len(made.code) == 43 and made.max_uses == 30
    listing = admin_client.get(reverse("admin:accounts_invitation_changelist")).content.decode()
    assert reverse("account-invitation", args=[made.code]) in listing


def _verification(tmp_path: Path, **env: str) -> list:
    code = (
        "import json, chatsite.settings as s;"
        "print(json.dumps([s.ACCOUNT_EMAIL_VERIFICATION, 'email*' in s.ACCOUNT_SIGNUP_FIELDS]))"
    )
    clean = {"PATH": os.environ.get("PATH", ""), "CHAT_VAR_DIR": str(tmp_path), "DJANGO_SECRET_KEY": "k" * 50, **env}
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_email_verification_is_on_when_mail_is_configured(tmp_path):
    assert _verification(tmp_path) == ["none", False]
    smtp = "django.core.mail.backends.smtp.EmailBackend"
    assert _verification(tmp_path, DJANGO_EMAIL_BACKEND=smtp) == ["mandatory", True]
    assert _verification(tmp_path, DJANGO_EMAIL_BACKEND=smtp, CHAT_EMAIL_VERIFICATION="optional") == [
        "optional",
        False,
    ]


def test_the_admin_approves_waiting_accounts_in_bulk(admin_client):
    waiting = [User.objects.create_user(name, is_active=False) for name in ("w1", "w2")]
    response = admin_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "approve", "_selected_action": [str(user.pk) for user in waiting]},
        follow=True,
    )
    assert "2 accounts approved." in response.content.decode()
    assert User.objects.filter(username__in=["w1", "w2"], is_active=True).count() == 2
