"""A socket's sign-in check: Django's full check first and after any change, one statement while nothing changed."""

from datetime import timedelta

import pytest
from django.contrib.auth import HASH_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.signin import SignInCheck
from tests.servers import session_cookie

pytestmark = pytest.mark.django_db


def check_for(user) -> SignInCheck:
    """The check of a socket opened with a fresh session of `user` (as the websockets' auth stack fills its scope)."""
    key = session_cookie(user).split("=", 1)[1]
    return SignInCheck({"session": SessionStore(key), "user": user})


def signed_in_counting(check: SignInCheck, monkeypatch) -> tuple[bool, int, int]:
    """Return the check's answer, its queries and how many sessions it decoded."""
    decoded = []
    decode = SessionStore.decode
    monkeypatch.setattr(SessionStore, "decode", lambda self, data: decoded.append(data) or decode(self, data))
    with CaptureQueriesContext(connection) as queries:
        answer = check.signed_in()
    monkeypatch.setattr(SessionStore, "decode", decode)
    return answer, len(queries), len(decoded)


def test_after_a_full_check_an_unchanged_sign_in_costs_one_statement_and_no_decoding(alice, monkeypatch):
    check = check_for(alice)
    assert signed_in_counting(check, monkeypatch) == (True, 3, 1)  # the statement, then the session and the user
    assert signed_in_counting(check, monkeypatch) == (True, 1, 0)
    assert signed_in_counting(check, monkeypatch) == (True, 1, 0)


def change_password(user, *, keep_session: SessionStore | None = None) -> None:
    user.set_password("a-new-password-42")
    user.save()
    if keep_session is not None:  # as `update_session_auth_hash` does for the session that changed it
        keep_session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        keep_session.save()


@pytest.mark.parametrize("how", ["logout", "expiry", "deactivation", "password-change"])
def test_a_sign_in_that_ended_after_a_passing_check_fails_the_next(alice, monkeypatch, how):
    check = check_for(alice)
    assert check.signed_in() and check.signed_in()
    if how == "logout":
        Session.objects.all().delete()
    elif how == "expiry":
        Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    elif how == "deactivation":
        alice.is_active = False
        alice.save()
    else:
        change_password(alice)
    assert check.signed_in() is False
    assert check.signed_in() is False  # and a failed check is never remembered as passed


def test_a_password_changed_in_the_sockets_own_session_keeps_it_signed_in(alice, monkeypatch):
    check = check_for(alice)
    assert check.signed_in() and check.signed_in()
    change_password(alice, keep_session=SessionStore(check.scope["session"].session_key))
    assert signed_in_counting(check, monkeypatch) == (True, 3, 1)  # the change: a full check again
    assert signed_in_counting(check, monkeypatch) == (True, 1, 0)


def test_a_session_of_another_user_or_none_does_not_sign_in(alice, bob):
    bobs_key = session_cookie(bob).split("=", 1)[1]
    assert SignInCheck({"session": SessionStore(bobs_key), "user": alice}).signed_in() is False
    assert SignInCheck({"session": SessionStore(), "user": alice}).signed_in() is False
    assert SignInCheck({"user": alice}).signed_in() is False
